"""Question answering's features: question and context as overlapping windows of tokens (max_length,
doc_stride), each labelled with the answer's token span or the CLS position."""

from __future__ import annotations


def _token_span(sequence_ids, offsets, texts, starts) -> tuple[int, int]:
    """Token positions of the first answer inside this window; (0, 0) = CLS when it is not inside."""
    if not texts:
        return 0, 0
    start_char, end_char = starts[0], starts[0] + len(texts[0])
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    first = next(i for i in context if offsets[i][1] > start_char)
    last = next(i for i in reversed(context) if offsets[i][0] < end_char)
    return first, last


class Features:
    """Question answering's features phase (mixed into the Task in __init__)."""

    # --- tokenize ---------------------------------------------------------------
    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        """Overlapping windows per question. Train windows carry start/end token positions
        (CLS when the answer is not inside); eval windows carry context offsets for post-processing.
        Both keep `example_id`, so subsets draw whole questions."""
        cfg = self.cfg
        training = split == "train"

        def encode(batch):
            enc = tokenizer(
                batch["question"], batch["context"], truncation="only_second", max_length=cfg.max_length,
                stride=cfg.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
            )
            owner = enc.pop("overflow_to_sample_mapping")
            offsets = enc.pop("offset_mapping")
            enc["example_id"] = [batch["id"][i] for i in owner]
            if training:
                enc["start_positions"], enc["end_positions"] = [], []
                for f, i in enumerate(owner):
                    start, end = _token_span(enc.sequence_ids(f), offsets[f], batch["answer_text"][i], batch["answer_start"][i])
                    enc["start_positions"].append(start)
                    enc["end_positions"].append(end)
            else:
                # Only context tokens keep offsets: the span search never picks question tokens.
                enc["offset_mapping"] = [
                    [o if s == 1 else None for o, s in zip(offsets[f], enc.sequence_ids(f))] for f in range(len(owner))
                ]
            return enc

        return dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=dataset.column_names)

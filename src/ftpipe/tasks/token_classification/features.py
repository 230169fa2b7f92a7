"""Token classification's features: a sentence's words joined and cut into sub-token windows, the first
sub-token of each word labelled, and the word spans the entities are read back on."""

from __future__ import annotations

from bisect import bisect_right

from ftpipe.core.errors import ConfigError


IGNORED = -100  # the label PyTorch's cross-entropy skips


def word_of_tokens(offsets, tokens: list[str]) -> list[int]:
    """The word (index into `tokens`, joined by single spaces) each sub-token lies in; -1 for special tokens
    and for a piece that is only the space between words (byte-level BPE counts the space into the next word's)."""
    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token) + 1
    out = []
    for start, end in offsets:
        w = bisect_right(starts, start) - 1
        if start == end or w < 0:
            out.append(-1)
            continue
        if start >= starts[w] + len(tokens[w]):  # in the space before word w + 1
            w = w + 1 if w + 1 < len(starts) and end > starts[w + 1] else -1
        out.append(w)
    return out


def sentence_text(row) -> str:
    return row["text"] if row.get("text") is not None else " ".join(row["tokens"])


def word_spans(row) -> list[tuple[int, int]]:
    """Each word's character span in `sentence_text(row)`: in the raw text it came from, or in the joined words."""
    if row.get("starts") is not None:
        return [(s, s + len(t)) for s, t in zip(row["starts"], row["tokens"])]
    spans, pos = [], 0
    for token in row["tokens"]:
        spans.append((pos, pos + len(token)))
        pos += len(token) + 1
    return spans


class Features:
    """Token classification's features phase (mixed into the Task in __init__)."""

    # --- tokenize ---------------------------------------------------------------
    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        """Windows of each sentence; every window keeps `example_id` (subsets take whole sentences) and
        its labels; evaluation windows also keep `word_ids`, the word each labelled sub-token starts."""
        cfg = self.cfg
        if not tokenizer.is_fast:
            raise ConfigError("model", "token classification needs a fast tokenizer (it ties sub-tokens to words by their offsets)")
        training = split == "train"

        def encode(batch):
            enc = tokenizer([" ".join(t) for t in batch["tokens"]], truncation=True, max_length=cfg.max_length,
                            stride=cfg.stride, return_overflowing_tokens=True, return_offsets_mapping=True)
            owner = enc.pop("overflow_to_sample_mapping")
            out = {"input_ids": enc["input_ids"], "example_id": [batch["id"][i] for i in owner], "labels": []}
            if not training:
                out["word_ids"] = []
            for f, i in enumerate(owner):
                labels, word_ids = self._align(word_of_tokens(enc["offset_mapping"][f], batch["tokens"][i]), batch["tags"][i])
                out["labels"].append(labels)
                if not training:
                    out["word_ids"].append(word_ids)
            return out

        return dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=dataset.column_names)

    def _align(self, token_words: list[int], tags: list[int]) -> tuple[list[int], list[int]]:
        """Per sub-token: its label, and the word it starts (-1: a later piece of a word, or a special token)."""
        labels, starts, previous = [], [], -1
        for w in token_words:
            first = w >= 0 and w != previous
            starts.append(w if first else -1)
            if first:
                labels.append(tags[w])
            elif w >= 0 and self.cfg.label_all_tokens:
                labels.append(tags[w] + (tags[w] % 2))  # B-X (odd id) -> I-X, the next id
            else:
                labels.append(IGNORED)
            previous = w
        return labels, starts

    def model_kwargs(self):
        return {"num_labels": len(self.tags), "id2label": dict(enumerate(self.tags)), "label2id": dict(self.ids)}

    def collator(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

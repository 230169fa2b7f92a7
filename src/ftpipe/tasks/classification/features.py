"""Classification's features: texts to input ids (truncated to task.max_length) with the label, and the
head's class names."""

from __future__ import annotations

import copy


def input_ids_encoder(tokenizer, max_length: int):
    """A function texts -> input_ids, equal to `tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]`.

    Written out because transformers' call always has the Rust backend compute character offsets
    (and masks) that classification never uses; the backend's `encode_batch_fast` skips them, which
    buys 1.3x the rows/s through `datasets.map` (benchmarks/README.md). tests/test_classification.py
    checks the two agree.
    """
    if not tokenizer.is_fast:
        return lambda texts: tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    backend = copy.deepcopy(tokenizer.backend_tokenizer)  # the tokenizer's own stays as transformers set it
    backend.no_padding()
    backend.enable_truncation(max_length, direction=tokenizer.truncation_side)
    return lambda texts: [encoding.ids for encoding in backend.encode_batch_fast(texts)]


class Features:
    """Classification's features phase (mixed into the Task in __init__)."""

    # --- tokenize ---------------------------------------------------------------
    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        # Only input_ids are stored: no padding here (the collator pads each batch to its own longest
        # row and builds the attention mask), and a single text needs no token_type_ids.
        encode_ids = input_ids_encoder(tokenizer, self.cfg.max_length)

        def encode(batch):
            return {"input_ids": encode_ids(batch["text"]), "labels": batch["label"]}

        return dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=["text", "label"])

    def model_kwargs(self):
        return {
            "num_labels": len(self.cfg.labels),
            "id2label": dict(enumerate(self.cfg.labels)),
            "label2id": {name: idx for idx, name in enumerate(self.cfg.labels)},
        }

"""The one batching loop of inference: task plug-ins give it rows and a step, it gives back one output per row.

Rows are sorted by length first (when asked), so each batch pads only to its own longest row;
outputs come back in input order, and may be ragged (logits trimmed to each row's length,
generated texts).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ftpipe.core import progress


def batched(model, rows: Sequence[dict], collate: Callable, step: Callable, batch_size: int,
            sort_by_length: bool = True, batch_tokens: int | None = None) -> list:
    """`step(model, batch, rows)` returns one output per row of the batch (`batch`: collated tensors on the model's device).

    `batch_tokens` (evaluate.batch_tokens): batches of at most that many tokens, padding included, sorted
    by length (token_budget_batches), instead of `batch_size` rows.
    Shows its progress in rows (ftpipe.core.progress: a bar, plain lines in a log, or nothing).
    """
    import torch

    device = next(model.parameters()).device
    out = [None] * len(rows)
    model.eval()
    with torch.inference_mode(), progress.bar(total=len(rows), unit="rows", default="predict") as bar:
        for idx in chunks([len(r["input_ids"]) for r in rows], batch_size, sort_by_length, batch_tokens):
            chunk = [rows[i] for i in idx]
            batch = {k: v.to(device) for k, v in collate(chunk).items()}
            for i, value in zip(idx, step(model, batch, chunk)):
                out[i] = value
            bar.update(len(idx))
    return out


def chunks(lengths: list[int], batch_size: int, sort_by_length: bool, batch_tokens: int | None) -> list:
    """Row indices, batch by batch: token-budget batches, or `batch_size` rows in length order (or as given)."""
    if batch_tokens:
        return token_budget_batches(lengths, batch_tokens)
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
    return [order[start:start + batch_size] for start in range(0, len(lengths), batch_size)]


def row_lengths(dataset) -> np.ndarray:
    """Each row's token count, read from the Arrow column (row order and selections kept): at 650k rows, a
    few milliseconds where decoding every row's ids into Python takes seconds."""
    import pyarrow.compute as pc

    return pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_numpy(zero_copy_only=False)


# A token-budget batch is closed early when padding its rows to the next row's length would make its padding
# waste (positions / real tokens - 1) exceed this. Where rows are many, neighbours in length order differ
# by a token or less and the budget closes batches first; where they are few, lengths are sparse and a
# batch of short rows would span a wide range of them. Measured on Yelp reviews at 2,048 tokens
# (MiniLM's tokenizer): 96 rows, waste 0.166 -> 0.032 (4 rows a batch instead of 10.7); 1,000 rows,
# 0.018 -> 0.013 (9.7 instead of 11.5).
MAX_PADDING = 0.05


def token_budget_batches(lengths, batch_tokens: int, max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Row indices in batches, shortest rows first: each batch holds as many rows as fit `batch_tokens` when
    padded to its longest (a row longer than the budget makes a batch of its own), and no more than keep its
    padding waste within `max_padding`. Ties keep input order."""
    batches, current, longest, real = [], [], 0, 0
    for i in np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable").tolist():
        length = int(lengths[i])
        longest_with = max(longest, length)
        positions = longest_with * (len(current) + 1)
        if current and (positions > batch_tokens or positions > (1 + max_padding) * (real + length)):
            batches.append(current)
            current, longest_with, real = [], length, 0
        current.append(i)
        longest, real = longest_with, real + length
    if current:
        batches.append(current)
    return batches


def model_inputs(features) -> list[dict]:
    """The columns a forward pass takes, as a list of rows."""
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in features.column_names]
    return features.select_columns(columns).to_list()


def logits(model, collator, features, batch_size: int, sort_by_length: bool, batch_tokens: int | None = None) -> np.ndarray:
    """Classification logits for every feature, in input order."""
    step = lambda model, batch, _: model(**batch).logits.float().cpu().numpy()  # noqa: E731
    return np.stack(batched(model, model_inputs(features), collator, step, batch_size, sort_by_length, batch_tokens))

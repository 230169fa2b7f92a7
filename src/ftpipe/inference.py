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


def token_budget_batches(lengths, batch_tokens: int) -> list[list[int]]:
    """Row indices in batches, shortest rows first: each batch holds as many rows as fit `batch_tokens` when
    padded to its longest (a row longer than the budget makes a batch of its own). Ties keep input order."""
    batches, current, longest = [], [], 0
    for i in np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable").tolist():
        longest_with = max(longest, int(lengths[i]))
        if current and longest_with * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest_with = [], int(lengths[i])
        current.append(i)
        longest = longest_with
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

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
            sort_by_length: bool = True) -> list:
    """`step(model, batch, rows)` returns one output per row of the batch (`batch`: collated tensors on the model's device).

    Shows its progress in rows (ftpipe.core.progress: a bar, plain lines in a log, or nothing).
    """
    import torch

    order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable") if sort_by_length else np.arange(len(rows))
    device = next(model.parameters()).device
    out = [None] * len(rows)
    model.eval()
    with torch.inference_mode(), progress.bar(total=len(rows), unit="rows", default="predict") as bar:
        for start in range(0, len(rows), batch_size):
            idx = order[start:start + batch_size]
            chunk = [rows[i] for i in idx]
            batch = {k: v.to(device) for k, v in collate(chunk).items()}
            for i, value in zip(idx, step(model, batch, chunk)):
                out[i] = value
            bar.update(len(idx))
    return out


def model_inputs(features) -> list[dict]:
    """The columns a forward pass takes, as a list of rows."""
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in features.column_names]
    return features.select_columns(columns).to_list()


def logits(model, collator, features, batch_size: int, sort_by_length: bool) -> np.ndarray:
    """Classification logits for every feature, in input order."""
    step = lambda model, batch, _: model(**batch).logits.float().cpu().numpy()  # noqa: E731
    return np.stack(batched(model, model_inputs(features), collator, step, batch_size, sort_by_length))

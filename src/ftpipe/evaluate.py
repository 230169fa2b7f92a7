"""`evaluate`: predictions and metrics of one model (the base or the tuned one) on the eval subset."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ftpipe.io import atomic_output, write_json
from ftpipe.models import load_for_task, load_tokenizer, load_tuned
from ftpipe.precision import autocast
from ftpipe.precision import resolve as resolve_precision

log = logging.getLogger(__name__)


def batched_forward(model, collator, features, batch_size: int, sort_by_length: bool) -> np.ndarray:
    """Logits for every feature, in input order.

    Sorting by length first means each batch pads only to its own longest row.
    """
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in features.column_names]
    rows = features.select_columns(columns).to_list()
    order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable") if sort_by_length else np.arange(len(rows))
    device = next(model.parameters()).device
    out = [None] * len(rows)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collator([rows[i] for i in idx]).items()}
            logits = model(**batch).logits.float().cpu().numpy()
            for i, row_logits in zip(idx, logits):
                out[i] = row_logits
    return np.stack(out)


def evaluate(params, which: str, model_dir: Path, base_dir: Path, data_dir: Path, clean_dir: Path,
             metrics_path: Path, predictions_path: Path, plots_dir: Path) -> dict:
    import datasets
    from transformers import set_seed

    from ftpipe.tasks import get_task

    task = get_task(params.task)
    tokenizer = load_tokenizer(base_dir if which == "base" else model_dir, task)
    set_seed(params.evaluate.seed)  # the base model's fresh head is the same every run
    model = load_for_task(task, base_dir, tokenizer) if which == "base" else load_tuned(task, model_dir, tokenizer)
    if torch.cuda.is_available():
        model.to("cuda")
    features = datasets.load_from_disk(str(Path(data_dir) / "eval"))
    examples = datasets.Dataset.from_parquet(str(Path(clean_dir) / "eval.parquet"), keep_in_memory=True)

    precision = resolve_precision(params.evaluate.precision)
    log.info("evaluating %s in %s", which, precision)
    with autocast(precision):
        rows = task.predict(model, tokenizer, features, examples, params.evaluate)
    metrics = task.metrics(rows)
    metrics["examples"] = len(rows)
    log.info("%s: %s", which, {k: v for k, v in metrics.items() if not isinstance(v, dict)})

    write_json(metrics_path, metrics)
    with atomic_output(predictions_path) as tmp:
        tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    with atomic_output(plots_dir) as tmp:
        tmp.mkdir()
        task.write_plots(rows, tmp)
    return metrics

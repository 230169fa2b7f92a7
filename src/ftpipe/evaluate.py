"""`evaluate`: predictions and metrics of one model (the base or the tuned one) on the eval subset."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ftpipe.io import atomic_output, write_json
from ftpipe.methods import load_tuned
from ftpipe.models.loading import load_for_task, load_tokenizer
from ftpipe.precision import autocast
from ftpipe.precision import resolve as resolve_precision

log = logging.getLogger(__name__)


def evaluate(params, which: str, model_dir: Path, base_dir: Path, data_dir: Path, clean_dir: Path,
             metrics_path: Path, predictions_path: Path, plots_dir: Path) -> dict:
    import datasets
    from transformers import set_seed

    from ftpipe.tasks import get_task

    task = get_task(params.task)
    trust = params.model.trust_remote_code
    tokenizer = load_tokenizer(base_dir if which == "base" else model_dir, task, trust_remote_code=trust)
    set_seed(params.evaluate.seed)  # the base model's fresh head is the same every run
    if which == "base":
        model = load_for_task(task, base_dir, tokenizer, trust_remote_code=trust)
    else:
        model = load_tuned(task, model_dir, base_dir, tokenizer, trust_remote_code=trust)
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

"""`evaluate`: predictions and metrics of one model (the base or the tuned one) on the eval subset.

Two metrics files: the headline (the task's top-level scores: accuracy and macro-F1, EM and F1,
ROUGE) that `dvc exp show`, `dvc metrics diff` and compare read, and the details (everything, per
class too, and the counts) in metrics/details/, versioned beside it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ftpipe.core import progress
from ftpipe.core.records import TimingRecord
from ftpipe.core.io import atomic_output
from ftpipe.core.results import Scores, write_predictions
from ftpipe.methods import load_tuned
from ftpipe.models.loading import custom_code_refused, load_for_task, load_tokenizer
from ftpipe.precision import autocast, for_inference
from ftpipe.precision import resolve as resolve_precision
from ftpipe.core.stage import peak_rss_mb

log = logging.getLogger(__name__)
COUNTS = ("examples", "total")  # sizes, not scores: details only


def headline(metrics: dict) -> dict:
    """The top-level scores; nested ones (per class) and counts go to the details file only."""
    return {k: v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith(COUNTS)}


def evaluate(params, which: str, model_dir: Path, base_dir: Path, data_dir: Path, clean_dir: Path,
             metrics_path: Path, predictions_path: Path, plots_dir: Path, run_dir: Path, details_path: Path | None = None) -> dict:
    import datasets
    from transformers import set_seed

    from ftpipe.tasks import get_task

    task = get_task(params.task)
    trust = params.model.trust_remote_code
    with custom_code_refused(model_dir):
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
    model = for_inference(model, precision, decodes=task.decodes)
    started = time.perf_counter()
    with autocast(precision), progress.named(f"evaluate {which}"):
        rows = task.predict(model, tokenizer, features, examples, params.evaluate)
    # Speed and memory vary run to run: in a run folder of their own, out of the metrics `dvc metrics diff`
    # compares and out of the plots, whose hash then moves only with the predictions.
    seconds = time.perf_counter() - started
    timing = TimingRecord(samples_per_second=round(len(rows) / seconds, 2), seconds=round(seconds, 3),
                          peak_rss_mb=peak_rss_mb(), precision=precision)
    metrics = task.metrics(rows)
    metrics["examples"] = len(rows)
    log.info("%s: %s", which, {k: v for k, v in metrics.items() if not isinstance(v, dict)})

    write_outputs(task, rows, metrics, timing, metrics_path, predictions_path, plots_dir, run_dir, details_path)
    return metrics


def write_outputs(task, rows, metrics, timing, metrics_path, predictions_path, plots_dir, run_dir, details_path=None) -> None:
    """Each output moves into place on its own, so the metrics go last: they never describe predictions
    and plots that are not there. A kill between the moves leaves new predictions beside old metrics,
    which DVC sees as out of date and the rerun replaces."""
    write_predictions(predictions_path, rows)
    with atomic_output(plots_dir) as tmp:
        tmp.mkdir()
        task.write_plots(rows, tmp)
    with atomic_output(run_dir) as tmp:
        tmp.mkdir()
        timing.save(tmp)
    if details_path is not None:
        Scores(metrics).write(details_path)
    Scores(headline(metrics)).write(metrics_path)

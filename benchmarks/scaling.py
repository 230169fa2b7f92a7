"""How ftpipe's cost grows with the work, per task: training rows at the task's max_length, then
max_length at a fixed number of rows.

Each point runs in a fresh process (its own peak RSS) through ftpipe's package code: the task
plug-in's tokenize, method.build, training_arguments (1 epoch, no validation split), the Trainer
with the task's collator. The models are the tiny ones built from a config (tiny_bert for
classification and QA, tiny_llama for summarization): on 2 cores a sweep with the real models would
take hours, and what grows with rows here is ftpipe's machinery (Arrow tables, collation, sampling,
the Trainer loop) rather than the model. The rows are the real ones (Yelp reviews repeated to reach
the count, SQuAD questions, DialogSum dialogues), so the lengths are real.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from benchmarks.common import Spec, compose_params, ftpipe_fit, isolated, prepare_model, scratch_dir, task_examples, timer, validated

# task -> (its workload's overrides, the tiny model that stands in for the real one)
TASKS = {
    "classification": (["experiment=yelp_bert", "data=yelp_local"], "tiny_bert"),
    "qa": (["experiment=squad_bert", "data=squad_local"], "tiny_bert"),
    "summarization": (["experiment=dialogsum_smollm2_lora"], "tiny_llama"),
}
FIXED_ROWS_FOR_LENGTHS = 500


def length_overrides(task_name: str, max_length: int | None) -> list[str]:
    """task.max_length, and for QA a window overlap in the reference's proportion (384 / 128)."""
    if not max_length:
        return []
    return [f"task.max_length={max_length}"] + ([f"task.doc_stride={max_length // 3}"] if task_name == "qa" else [])


def point(spec: Spec, task_name: str, model_dir: str, rows: int, max_length: int | None) -> dict:
    """Tokenize `rows` training rows and train on them for one epoch; time and peak RSS of each phase."""
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    overrides, tiny = TASKS[task_name]
    params = compose_params(overrides + [f"model={tiny}"] + length_overrides(task_name, max_length))
    p = validated(params, "task", "model", "method", "tokenize", "train")
    task = get_task(p.task)
    tokenizer = load_tokenizer(model_dir, task)
    raw = task_examples(params, "train", rows, repeat=True)
    out: dict = {"task": task_name, "rows": rows, "max_length": p.task.max_length}
    with timer(out, "tokenize_s"):
        features = task.tokenize(raw, tokenizer, "train", p.tokenize.num_proc, p.tokenize.batch_size)
    train_cfg = dataclasses.replace(p.train, epochs=1, max_steps=-1, validation_fraction=0)
    ftpipe_fit(dataclasses.replace(p, train=train_cfg), task, tokenizer, features, model_dir, "scaling", spec.device, out)
    out.update(features=len(features), tokens=int(sum(len(ids) for ids in features["input_ids"])),
               train_ms_per_row=round(1000 * out["train_s"] / rows, 2))
    return out


def scaling(spec: Spec) -> dict:
    """Every (task, rows) point at the task's own max_length, then every (task, max_length) point."""
    model_dirs = {tiny: prepare_model(dataclasses.replace(spec, model=tiny), scratch_dir()) for _, tiny in TASKS.values()}
    points = []
    for task_name, (_, tiny) in TASKS.items():
        for rows in spec.scaling_sizes:
            points.append(isolated(point, spec, task_name, model_dirs[tiny], rows, None) | {"sweep": "rows"})
        for length in spec.scaling_lengths:
            rows = min(FIXED_ROWS_FOR_LENGTHS, max(spec.scaling_sizes))
            points.append(isolated(point, spec, task_name, model_dirs[tiny], rows, length) | {"sweep": "max_length"})
    return {"what": __doc__.split("\n\n")[0].replace("\n", " "), "models": {t: tiny for t, (_, tiny) in TASKS.items()},
            "points": points}


def write_plot_files(result: dict, stem: str, results_dir: Path) -> list[Path]:
    """`dvc plots`-ready files (benchmarks/dvc.yaml): one row per x value, one column per task and measure."""
    written = []
    for sweep, x in (("rows", "rows"), ("max_length", "max_length")):
        table: dict = {}
        for pt in result["points"]:
            if pt["sweep"] == sweep:
                row = table.setdefault(pt[x], {x: pt[x]})
                row[f"{pt['task']}_train_s"] = pt["train_s"]
                row[f"{pt['task']}_train_peak_rss_mb"] = pt["train_peak_rss_mb"]
        path = results_dir / f"{stem}-scaling-{sweep.replace('_', '-')}.json"
        path.write_text(json.dumps([table[k] for k in sorted(table)], indent=2) + "\n")
        written.append(path)
    return written

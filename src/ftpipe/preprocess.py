"""`preprocess`: the task plug-in validates and normalises every raw record.

A bad record stops the stage with one line naming the file, the record and the field, unless
`data.on_bad_record: drop`, which drops and counts it. Output is written only when all is well.
Records shared by train and eval (same id, or same input text) are counted and warned about,
or refused with `data.on_overlap: error`: they make eval scores measure memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

from ftpipe.errors import DataError
from ftpipe.io import atomic_output, write_json
from ftpipe.tasks.base import RecordError

log = logging.getLogger(__name__)
# The fields a model reads, per task type (classification, qa, summarization): two rows with the
# same inputs are the same example to the model, whatever their ids or labels say.
INPUT_FIELDS = ("text", "context", "question", "dialogue")


def preprocess(task, data_cfg, raw_dir: Path, out_dir: Path, metrics_path: Path) -> dict:
    import datasets

    on_overlap = data_cfg.on_overlap
    stats: dict = {}
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        cleaned, counts, auto_ids = {}, {}, {}
        for split in ("train", "eval"):
            task.stats.clear()
            auto_ids[split] = set()
            cleaned[split] = _clean_split(task, data_cfg, Path(raw_dir) / split, auto_ids[split])
            counts[split] = dict(task.stats)  # the plug-in's own counts (repairs, ...)
        if data_cfg.eval_from_train:
            cleaned = _hold_out(cleaned, data_cfg.eval_from_train)
        overlap = _overlap(cleaned["train"][0], cleaned["eval"][0], auto_ids, Path(raw_dir), on_overlap)
        for split, (rows, dropped) in cleaned.items():
            if not rows:
                raise DataError(Path(raw_dir) / split, "no usable records (no input files, or every record was dropped)")
            datasets.Dataset.from_list(rows).to_parquet(str(tmp / f"{split}.parquet"))
            stats[split] = {"records": len(rows), "dropped": sum(dropped.values()), "dropped_by_reason": dict(dropped), **counts.get(split, {})}
            log.info("%s: %d records kept, %d dropped", split, len(rows), sum(dropped.values()))
        stats["overlap"] = overlap
    write_json(metrics_path, stats)
    return stats


def _hold_out(cleaned: dict, fraction: float) -> dict:
    """Move a stable `fraction` of train to eval: chosen by a hash of each id, not by position."""
    rows, dropped = cleaned["train"]
    held = [int(hashlib.md5(row["id"].encode()).hexdigest(), 16) % 10_000 < fraction * 10_000 for row in rows]
    return {"train": ([r for r, h in zip(rows, held) if not h], dropped),
            "eval": ([r for r, h in zip(rows, held) if h], Counter())}


def _overlap(train: list[dict], eval_: list[dict], auto_ids: dict[str, set], raw_dir: Path, on_overlap: str) -> dict:
    """Count eval records whose id or input also occurs in train; warn, or raise with on_overlap=error."""
    # Ids made up from file name and record number say nothing about the records: left out.
    train_ids = {row["id"] for row in train} - auto_ids["train"]
    train_inputs = {_input_key(row) for row in train}
    shared_ids = [row["id"] for row in eval_ if row["id"] in train_ids and row["id"] not in auto_ids["eval"]]
    shared_inputs = [row["id"] for row in eval_ if _input_key(row) in train_inputs]
    overlap = {"ids": len(shared_ids), "texts": len(shared_inputs)}
    if shared_ids or shared_inputs:
        first = (shared_ids or shared_inputs)[0]
        what = f"train and eval share {len(shared_ids)} ids and {len(shared_inputs)} texts (first in eval: id {first!r})"
        if on_overlap == "error":
            raise DataError(raw_dir, f"{what}; data.on_overlap is 'error'")
        log.warning("%s: eval scores will overrate the model (data.on_overlap=error refuses this)", what)
    return overlap


def _input_key(row: dict) -> str:
    """A hash of what the model reads; case and spacing ignored, as they barely change an example."""
    fields = [f for f in INPUT_FIELDS if f in row] or sorted(set(row) - {"id"})
    inputs = [" ".join(str(row[f]).split()).casefold() for f in fields]
    return hashlib.sha1(json.dumps(inputs).encode()).hexdigest()


def _clean_split(task, data_cfg, split_dir: Path, auto_ids: set) -> tuple[list[dict], Counter]:
    rows, dropped, seen = [], Counter(), {}
    files = sorted(p for p in split_dir.iterdir() if p.is_file())
    for path in files:
        for number, record in task.read(path, data_cfg.columns):
            try:
                row = task.clean(record, data_cfg)
            except RecordError as err:
                if data_cfg.on_bad_record == "drop":
                    dropped[f"{err.field}: {err}"] += 1
                    continue
                raise DataError(path, str(err), record=number, field=err.field) from None
            if not row.get("id"):
                row["id"] = f"{path.stem}-{number}"
                auto_ids.add(row["id"])
            if row["id"] in seen:
                raise DataError(path, f"duplicate id {row['id']!r} (first seen in {seen[row['id']]})", record=number, field="id")
            seen[row["id"]] = f"{path.name} record {number}"
            rows.append(row)
    return rows, dropped

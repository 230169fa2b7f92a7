"""`preprocess`: the task plug-in validates and normalises every raw record.

A bad record stops the stage with one line naming the file, the record and the field, unless
`data.on_bad_record: drop`, which drops and counts it. Output is written only when all is well.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path

from ftpipe.errors import DataError
from ftpipe.io import atomic_output, write_json
from ftpipe.tasks.base import RecordError

log = logging.getLogger(__name__)


def preprocess(task, data_cfg, raw_dir: Path, out_dir: Path, metrics_path: Path) -> dict:
    import datasets

    stats: dict[str, dict] = {}
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        cleaned, counts = {}, {}
        for split in ("train", "eval"):
            task.stats.clear()
            cleaned[split] = _clean_split(task, data_cfg, Path(raw_dir) / split)
            counts[split] = dict(task.stats)  # the plug-in's own counts (repairs, ...)
        if data_cfg.eval_from_train:
            cleaned = _hold_out(cleaned, data_cfg.eval_from_train)
        for split, (rows, dropped) in cleaned.items():
            if not rows:
                raise DataError(Path(raw_dir) / split, "no usable records (no input files, or every record was dropped)")
            datasets.Dataset.from_list(rows).to_parquet(str(tmp / f"{split}.parquet"))
            stats[split] = {"records": len(rows), "dropped": sum(dropped.values()), "dropped_by_reason": dict(dropped), **counts.get(split, {})}
            log.info("%s: %d records kept, %d dropped", split, len(rows), sum(dropped.values()))
    write_json(metrics_path, stats)
    return stats


def _hold_out(cleaned: dict, fraction: float) -> dict:
    """Move a stable `fraction` of train to eval: chosen by a hash of each id, not by position."""
    rows, dropped = cleaned["train"]
    held = [int(hashlib.md5(row["id"].encode()).hexdigest(), 16) % 10_000 < fraction * 10_000 for row in rows]
    return {"train": ([r for r, h in zip(rows, held) if not h], dropped),
            "eval": ([r for r, h in zip(rows, held) if h], Counter())}


def _clean_split(task, data_cfg, split_dir: Path) -> tuple[list[dict], Counter]:
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
            row["id"] = row.get("id") or f"{path.stem}-{number}"
            if row["id"] in seen:
                raise DataError(path, f"duplicate id {row['id']!r} (first seen in {seen[row['id']]})", record=number, field="id")
            seen[row["id"]] = f"{path.name} record {number}"
            rows.append(row)
    return rows, dropped

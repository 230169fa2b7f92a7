"""`preprocess`: the task plug-in validates and normalises every raw record.

A bad record stops the stage with one line naming the file, the record and the field, unless
`data.on_bad_record: drop`, which drops and counts it. Output is written only when all is well.
Records shared by train and eval (same id, or same input text) are counted and warned about,
or refused with `data.on_overlap: error`: they make eval scores measure memory.

Memory does not grow with the data: records stream from the readers to Parquet in row groups of
ROW_GROUP rows, and the duplicate and overlap checks keep an 8-byte digest per record (plus where
it came from), not the records. Records are named again, on the rare error path, by reading them back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from array import array
from collections import Counter
from pathlib import Path

import numpy as np

from ftpipe.core.errors import DataError
from ftpipe.core.records import LocalFilesRecord
from ftpipe.core.io import atomic_output, sha256_file
from ftpipe.core.results import PreprocessCounts
from ftpipe.tasks.base import RecordError

log = logging.getLogger(__name__)
SPLITS = ("train", "eval")
ROW_GROUP = 10_000  # rows held before they go to Parquet: bounds memory, and fixes the file's layout


def preprocess(task, data_cfg, raw_dir: Path, out_dir: Path, metrics_path: Path) -> dict:
    raw_dir = Path(raw_dir)
    stats: dict = {}
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        outputs = {split: _Output(tmp / f"{split}.parquet", task.input_fields) for split in SPLITS}
        dropped: dict[str, Counter] = {split: Counter() for split in SPLITS}
        counts: dict[str, dict] = {split: {} for split in SPLITS}
        # With eval_from_train, eval is a stable fraction of train (by a hash of the id, not by position).
        for split in ("train",) if data_cfg.eval_from_train else SPLITS:
            task.stats.clear()
            route = _hold_out(outputs, data_cfg.eval_from_train) if data_cfg.eval_from_train else (lambda row: outputs[split])
            files = input_files(raw_dir / split)
            seen, prefixes = _Seen(), auto_id_prefixes(files)
            for index, path in enumerate(files):
                for number, row in _clean_records(task, data_cfg, path, dropped[split], prefixes[index]):
                    seen.add(row["id"], index, number)
                    route(row).add(row)
            _check_duplicates(task, data_cfg, files, prefixes, seen)
            counts[split] = dict(task.stats)  # the plug-in's own counts (repairs, ...)
        for split, output in outputs.items():
            output.close()
            if not output.rows:
                raise DataError(raw_dir / split, "no usable records (no input files, or every record was dropped)")
            stats[split] = {"records": output.rows, "dropped": sum(dropped[split].values()),
                            "dropped_by_reason": dict(dropped[split]), **counts[split]}
            log.info("%s: %d records kept, %d dropped", split, output.rows, sum(dropped[split].values()))
        stats["overlap"] = _overlap(outputs["train"], outputs["eval"], raw_dir, data_cfg.on_overlap)
    PreprocessCounts(stats).write(metrics_path)
    return stats


def input_files(split_dir: Path) -> list[Path]:
    """The files of one split: the user's own, read in place (listed by download_data), or those in the folder."""
    if not LocalFilesRecord.exists(split_dir):
        return sorted(p for p in split_dir.iterdir() if p.is_file())
    files = []
    for entry in LocalFilesRecord.load(split_dir).files:
        path = Path(entry["path"])
        if not path.is_file():
            raise DataError(path, "file not found (listed by download_data in data/raw): run `dvc repro`")
        # The record DVC keeps is that file's fingerprint: read nothing else under its name.
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise DataError(path, "changed since download_data fingerprinted it: run `dvc repro`, which reruns from there")
        files.append(path)
    return files


def auto_id_prefixes(files: list[Path]) -> list[str]:
    """What the id of a record without one starts with, per file: its name's stem, or its whole path where
    two files of the split share a stem (a/reviews.csv and b/reviews.csv: their ids were the same)."""
    stems = Counter(path.stem for path in files)
    return [path.stem if stems[path.stem] == 1 else path.as_posix() for path in files]


def _clean_records(task, data_cfg, path: Path, dropped: Counter, id_prefix: str):
    """(record number, cleaned row) of one file; a bad record raises, or is counted in `dropped`."""
    for number, record in task.read(path, data_cfg.columns):
        try:
            row = task.clean(record, data_cfg)
        except RecordError as err:
            if data_cfg.on_bad_record == "drop":
                dropped[f"{err.field}: {err}"] += 1
                continue
            raise DataError(path, str(err), record=number, field=err.field) from None
        if not row.get("id"):
            row["id"] = f"{id_prefix}-{number}"
            row["_auto_id"] = True
        yield number, row


def _hold_out(outputs: dict, fraction: float):
    def route(row: dict):
        held = int(hashlib.md5(row["id"].encode()).hexdigest(), 16) % 10_000 < fraction * 10_000
        return outputs["eval" if held else "train"]
    return route


def digest(text: str) -> int:
    """8 bytes of BLAKE2b: a collision among 10 million records has odds of about 1 in 300,000,
    and a duplicate found by digest is confirmed on the records themselves before it is reported."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _input_key(row: dict, input_fields: tuple[str, ...]) -> int:
    """A digest of what the model reads (the task's input fields, else every field but the id); case
    and spacing ignored, as they barely change an example."""
    fields = [f for f in input_fields if f in row] or sorted(set(row) - {"id", "_auto_id"})
    return digest(json.dumps([" ".join(str(row[f]).split()).casefold() for f in fields]))


class _Seen:
    """Every id of a split as a digest, with the file and record it came from: 16 bytes a record."""

    def __init__(self):
        self.ids, self.files, self.numbers = array("Q"), array("I"), array("I")

    def add(self, record_id: str, file_index: int, number: int) -> None:
        self.ids.append(digest(record_id))
        self.files.append(file_index)
        self.numbers.append(number)

    def repeats(self):
        """(first, repeat) positions of equal digests, the earliest repeat first."""
        ids = np.frombuffer(self.ids, dtype=np.uint64)
        order = np.argsort(ids, kind="stable")  # equal digests stay in reading order
        same = ids[order][1:] == ids[order][:-1]
        pairs = sorted(zip(order[1:][same].tolist(), order[:-1][same].tolist()))
        return [(first, repeat) for repeat, first in pairs]


def _check_duplicates(task, data_cfg, files: list[Path], prefixes: list[str], seen: _Seen) -> None:
    for first, repeat in seen.repeats():
        a = (files[seen.files[first]], prefixes[seen.files[first]], seen.numbers[first])
        b = (files[seen.files[repeat]], prefixes[seen.files[repeat]], seen.numbers[repeat])
        record_id = _id_of(task, data_cfg, *b)
        if _id_of(task, data_cfg, *a) == record_id:  # else two ids that share a digest: not a duplicate
            raise DataError(b[0], f"duplicate id {record_id!r} (first seen in {a[0].name} record {a[2]})", record=b[2], field="id")


def _id_of(task, data_cfg, path: Path, id_prefix: str, number: int) -> str:
    """The id of one record, read back from its file (only to name a duplicate)."""
    return next(row["id"] for n, row in _clean_records(task, data_cfg, path, Counter(), id_prefix) if n == number)


class _Output:
    """One split's Parquet file, written a row group at a time, and the digests the overlap check needs."""

    def __init__(self, path: Path, input_fields: tuple[str, ...]):
        self.path, self.input_fields, self.buffer, self.rows = path, input_fields, [], 0
        self.writer = self.schema = None
        self.ids, self.inputs, self.auto = array("Q"), array("Q"), bytearray()

    def add(self, row: dict) -> None:
        auto = row.pop("_auto_id", False)
        self.ids.append(digest(row["id"]))
        self.inputs.append(_input_key(row, self.input_fields))
        self.auto.append(auto)
        self.buffer.append(row)
        self.rows += 1
        if len(self.buffer) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer:
            return
        table, self.buffer = pa.Table.from_pylist(self.buffer), []
        if self.writer is None:
            self.schema, self.writer = table.schema, pq.ParquetWriter(self.path, table.schema)
        elif table.schema != self.schema:
            table = self._conform(table)
        self.writer.write_table(table)

    def _conform(self, table):
        """A row group typed differently from the first: a column all null there (no answers yet, ...)
        takes its type from this one. Rare, so the groups already written are rewritten, not typed ahead."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return table.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
        schema = pa.unify_schemas([self.schema, table.schema], promote_options="permissive")
        self.writer.close()
        written = self.path.with_name(self.path.name + ".part")
        self.path.rename(written)
        self.schema, self.writer = schema, pq.ParquetWriter(self.path, schema)
        for group in range(pq.ParquetFile(written).num_row_groups):
            self.writer.write_table(pq.ParquetFile(written).read_row_group(group).cast(schema))
        written.unlink()
        return table.cast(schema)

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()

    def id_at(self, position: int) -> str:
        import pyarrow.parquet as pq

        return pq.read_table(self.path, columns=["id"]).column("id")[position].as_py()


def _overlap(train: _Output, eval_: _Output, raw_dir: Path, on_overlap: str) -> dict:
    """Count eval records whose id or input also occurs in train; warn, or raise with on_overlap=error."""
    # Ids made up from file name and record number say nothing about the records: left out.
    made_up = lambda out: np.frombuffer(bytes(out.auto), dtype=np.bool_)  # noqa: E731
    train_ids = np.frombuffer(train.ids, dtype=np.uint64)[~made_up(train)]
    shared_ids = np.isin(np.frombuffer(eval_.ids, dtype=np.uint64), train_ids) & ~made_up(eval_)
    shared_inputs = np.isin(np.frombuffer(eval_.inputs, dtype=np.uint64), np.frombuffer(train.inputs, dtype=np.uint64))
    overlap = {"ids": int(shared_ids.sum()), "texts": int(shared_inputs.sum())}
    if overlap["ids"] or overlap["texts"]:
        first = eval_.id_at(int(np.flatnonzero(shared_ids if overlap["ids"] else shared_inputs)[0]))
        what = f"train and eval share {overlap['ids']} ids and {overlap['texts']} texts (first in eval: id {first!r})"
        if on_overlap == "error":
            raise DataError(raw_dir, f"{what}; data.on_overlap is 'error'")
        log.warning("%s: eval scores will overrate the model (data.on_overlap=error refuses this)", what)
    return overlap

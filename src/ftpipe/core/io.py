"""File helpers: atomic outputs, JSON, and reading records from CSV/JSON/JSONL/Parquet."""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from collections import Counter
from typing import Any, Iterator

from ftpipe.core.errors import DataError, listed, shown

READABLE = (".csv", ".json", ".jsonl", ".parquet")
BOM = "\ufeff"  # a UTF-8 byte order mark, as decoded
log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; move it into place only if the block succeeds.

    A crash or bad input therefore never leaves a half-written artifact for DVC to cache.
    Works for files and directories alike. The old output is renamed aside (`.<name>.tmp-<pid>-old`)
    before the new one takes its place and removed after, so at every instant a complete output
    exists, old or new: a kill between the two renames leaves the aside copy, which the next run's
    cleanup (_remove_stale) puts back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    aside = tmp.with_name(f"{tmp.name}-old")
    _remove(tmp)
    _remove(aside)
    try:
        yield tmp
        if _exists(path):
            os.replace(path, aside)
        os.replace(tmp, path)
    except BaseException as err:
        if _exists(aside) and not _exists(path):  # failed between the renames: the old output goes back
            os.replace(aside, path)
        _remove(tmp)
        if isinstance(err, OSError) and err.filename is None:  # disk full, shutil.Error: say which output
            err.filename = str(path)
        raise
    _remove(aside)


@contextlib.contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """A scratch folder beside `path` (on its disk, not /tmp), removed afterwards, however the block ends."""
    scratch = Path(path).with_name(f"{Path(path).name}-scratch")
    _remove_stale(scratch)
    tmp = scratch.with_name(f".{scratch.name}.tmp-{os.getpid()}")
    _remove(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        _remove(tmp)


def _remove_stale(path: Path) -> None:
    """Remove temporary siblings of `path` left by a killed process (SIGKILL skips the cleanup above).

    An old output renamed aside by a process killed before the new one took its place is the only
    complete copy: it is put back, never removed. Those of a live process (a concurrent stage) are left alone.
    """
    for stale in sorted(path.parent.glob(f".{glob.escape(path.name)}.tmp-*")):
        pid, _, kind = stale.name.rpartition(".tmp-")[2].partition("-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if kind == "old" and not _exists(path):
                log.warning("restoring %s from %s: the process replacing it died", path, stale)
                os.replace(stale, path)
            else:
                log.info("removing %s, left by a process that died", stale)
                _remove(stale)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif _exists(path):
        path.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_records(path: str | Path, columns: dict[str, str] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (record number, record) from a CSV, JSON (list), JSONL or Parquet file.

    Record numbers count from 1: data rows for CSV and Parquet, lines for JSONL, items for JSON.
    `columns` maps ftpipe's field names to the file's column names. A mapped column the file
    lacks, or an unmapped column named like a mapped field, is an error rather than a silent
    guess. Integer ids become strings, so id 0 stays "0" instead of counting as "no id".
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READABLE:
        raise DataError(path, f"unsupported file type '{suffix}' (use {', '.join(READABLE)})")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    columns = dict(columns or {})
    rename = {source: name for name, source in columns.items()}
    seen: dict[str, None] = {}  # every key met, in order: JSON records need not share their keys
    number = 0
    try:
        for number, record in _records(path, suffix, columns):
            if not isinstance(record, dict):
                raise DataError(path, f"expected an object, got {type(record).__name__}", record=number)
            _check_clash(path, record, columns, number)
            seen.update(dict.fromkeys(record))
            record = {rename.get(key, key): _none_if_nan(value) for key, value in record.items()}
            if isinstance(record.get("id"), int) and not isinstance(record["id"], bool):
                record["id"] = str(record["id"])
            yield number, record
    except UnicodeDecodeError as err:  # .json (CSV and JSONL lines are decoded one by one below)
        raise DataError(path, f"not valid UTF-8 (byte 0x{err.object[err.start]:02x} at offset {err.start})") from None
    except csv.Error as err:  # unbalanced quotes, a field over csv.field_size_limit(), ...
        raise DataError(path, f"malformed CSV: {err}", record=number + 1) from None
    if seen:  # JSON and JSONL: known only once every record was read (CSV and Parquet fail at the header)
        _check_mapped(path, list(seen), columns)


def _check_mapped(path: Path, names: list[str], columns: dict[str, str]) -> None:
    for field, source in columns.items():
        if source not in names:
            raise DataError(path, f"column '{source}' (data.columns.{field}) not found (columns: {listed(names)})")


def _check_clash(path: Path, names, columns: dict[str, str], number: int | None = None) -> None:
    """An unmapped column named like a mapped field: which one was meant is a guess, so refuse."""
    sources = set(columns.values())
    for field, source in columns.items():
        if field in names and field not in sources:
            raise DataError(path, f"column '{field}' clashes with data.columns.{field}: '{source}' "
                                  f"(rename or drop one of them)", record=number)


def _records(path: Path, suffix: str, columns: dict[str, str]) -> Iterator[tuple[int, Any]]:
    if suffix == ".csv":
        with open(path, "rb") as fh:
            reader = csv.DictReader(decoded_lines(fh, path, first_record=0), strict=True)  # strict: bad quoting is an error, not a silent merge
            if not reader.fieldnames:
                raise DataError(path, "no header row")
            twice = [name for name, count in Counter(reader.fieldnames).items() if count > 1]
            if twice:  # DictReader would keep the last of them
                raise DataError(path, f"column '{twice[0]}' appears {reader.fieldnames.count(twice[0])} times in the header")
            _check_mapped(path, reader.fieldnames, columns)
            _check_clash(path, reader.fieldnames, columns)
            for number, row in enumerate(reader, start=1):
                # More cells than header columns land under the key None, fewer leave None values (csv
                # skips a blank line): either way the cells no longer say which column they are.
                cells = len(reader.fieldnames) + len(row.get(None, ())) - list(row.values()).count(None)
                if cells != len(reader.fieldnames):
                    raise DataError(path, f"{cells} cell{'s' * (cells != 1)} for {len(reader.fieldnames)} columns", record=number)
                yield number, row
    elif suffix == ".jsonl":
        with open(path, "rb") as fh:
            for number, line in enumerate(decoded_lines(fh, path, first_record=1), start=1):
                if line.strip():
                    yield number, _loads(line, path, number)
    elif suffix == ".json":
        data = _loads(read_text(path), path, None)
        items = data.get("data") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise DataError(path, "expected a JSON list of records (or {'data': [...]})")
        yield from enumerate(items, start=1)
    else:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise DataError(path, f"not a readable Parquet file ({err})") from None
        names = parquet.schema_arrow.names
        _check_mapped(path, names, columns)
        _check_clash(path, names, columns)
        # Batch by batch: a file of millions of rows never sits in memory as Python objects.
        rows = (row for batch in parquet.iter_batches(batch_size=10_000) for row in batch.to_pylist())
        yield from enumerate(rows, start=1)


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: str | Path) -> str:
    """A UTF-8 file's text without the byte order mark some editors (Excel, Notepad) write first."""
    data = Path(path).read_bytes()
    if why := _not_text(data):
        raise DataError(path, why)
    return data.decode("utf-8").removeprefix(BOM)


def _not_text(data: bytes) -> str | None:
    """Why bytes read as UTF-8 text are not text, in words that say what to do. UTF-16 (a spreadsheet's
    "Unicode text" export) of ASCII is valid UTF-8 with a NUL after every letter: its column names would be
    read with NULs in them, and no data file holds a raw NUL."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        return "not UTF-8 text: it holds NUL bytes or a UTF-16 byte order mark (UTF-16? save it as UTF-8)"
    return None


def decoded_lines(fh, path, first_record: int) -> Iterator[str]:
    """Lines decoded one at a time, so a bad byte is reported with its record (line 1 is record `first_record`)."""
    for number, line in enumerate(fh, start=first_record):
        if why := _not_text(line):
            raise DataError(path, why, record=number or None)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(path, f"not valid UTF-8 (byte 0x{line[err.start]:02x})", record=number or None) from None
        yield text.removeprefix(BOM) if number == first_record else text


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) < len(pairs):
        seen = set()
        raise _DuplicateKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return out


def _loads(text: str, path: Path, number: int | None) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}" if number is None else f"column {err.colno}"
        raise DataError(path, f"malformed JSON at {where}: {err.msg}", record=number) from None
    except _DuplicateKey as err:  # json.loads would keep the last value without a word
        raise DataError(path, f"key '{shown(err.args[0])}' appears twice in one object", record=number) from None


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def record_hub_source(out_dir: Path, key: str, repo: str, revision: str | None, commit: str) -> None:
    """Write which Hub commit a download resolved to next to what it downloaded, so a run made
    with a branch name (`main`) still says exactly what it used; warn when `revision` is not a commit."""
    if not re.fullmatch(r"[0-9a-f]{40}", revision or ""):
        log.warning("%s %r is not a commit sha, so %s may change under you; this download got %s "
                    "(set %s=%s to pin it)", key, revision, repo, commit, key, commit)
    from ftpipe.core.records import BaseRecord

    BaseRecord(repo=repo, revision=revision, commit=commit).save(out_dir)

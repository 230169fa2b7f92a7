"""Runs as `ftpipe-compare` reads them: what a name means to DVC (an experiment from `dvc exp show`, a
commit, tag or branch, or the workspace), and what that run left at its revision, read through DVC's
filesystem without checking anything out: its params, dvc.lock, predictions and records.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import yaml

from ftpipe.core.errors import DataError, FtpipeError
from ftpipe.core.records import EVALUATION_RUNS, RunRecord, TimingRecord, TrainRecord
from ftpipe.core.results import PredictionRow, parse_predictions

WORKSPACE = "workspace"
RUN = Path("runs/train")  # the train stage's RunRecord (dvc.yaml)
TUNED = Path("models/tuned")  # its TrainRecord


class RunError(FtpipeError):
    """A run that cannot be read or compared: one line naming it and what is wrong."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")


@dataclass
class Run:
    """One run at its revision: the name the user gave, the commit it is (None: the workspace), and what it left."""

    name: str
    rev: str | None
    params: dict
    lock: dict
    rows: list[PredictionRow]
    trained: TrainRecord | None
    ran: RunRecord | None
    timing: TimingRecord | None

    @property
    def task_type(self) -> str:
        return str((self.params.get("task") or {}).get("type", ""))

    @property
    def seed(self):
        return (self.params.get("train") or {}).get("seed")


def resolve(repo, names: list[str]) -> list[tuple[str, str | None]]:
    """(name, commit) for each name; `workspace` is (name, None). A name ending in `*` is every
    experiment whose name starts with the rest, in name order (e.g. `seed-*`)."""
    from dvc.repo.experiments.utils import resolve_name

    out: list[tuple[str, str | None]] = []
    for name in names:
        if name == WORKSPACE:
            out.append((name, None))
        elif name.endswith("*"):
            matched = sorted(exp for exp in experiment_names(repo) if fnmatch.fnmatchcase(exp, name))
            if not matched:
                raise RunError(name, "no experiment name matches (see dvc exp show)")
            out += [(exp, _experiment_commit(repo, resolve_name, exp)) for exp in matched]
        else:
            out.append((name, _experiment_commit(repo, resolve_name, name) or _commit(repo, name)))
    return out


def experiment_names(repo) -> list[str]:
    return [name for exps in repo.experiments.ls(all_commits=True).values() for name, _ in exps if name]


def _experiment_commit(repo, resolve_name, name: str) -> str | None:
    try:
        ref = resolve_name(repo.scm, name).get(name)
    except Exception as err:  # noqa: BLE001  (DVC's AmbiguousExpRefInfo and kin: the name is not usable)
        raise RunError(name, " ".join(str(err).split())[:200]) from None
    return repo.scm.get_ref(str(ref)) if ref else None


def _commit(repo, name: str) -> str:
    try:
        return repo.scm.resolve_rev(name)
    except Exception:  # noqa: BLE001  (scmrepo's RevError: the name is nothing git knows)
        raise RunError(name, "not an experiment, commit, tag or branch of this repository (see dvc exp show)") from None


def load(name: str, rev: str | None, which: str = "tuned") -> Run:
    """The run `name` at `rev` (None: the workspace as it is on disk)."""
    read = _reader(rev)
    predictions = f"predictions/{which}.jsonl"
    text = read(predictions)
    if text is None:
        raise RunError(name, f"no {predictions}: evaluate never ran there (dvc exp show lists the runs that did)")
    rows = _rows(name, predictions, text)
    params, lock = yaml.safe_load(read("params.yaml") or "") or {}, yaml.safe_load(read("dvc.lock") or "") or {}
    trained = _record(TrainRecord, TUNED, read, name)
    ran = _record(RunRecord, RUN, read, name)
    timing = _record(TimingRecord, EVALUATION_RUNS / which, read, name)
    return Run(name, rev, params, lock, rows, trained, ran, timing)


def _reader(rev: str | None):
    """path -> its text at `rev`, or None where the run has no such file."""
    if rev is None:
        return lambda path: Path(path).read_text(encoding="utf-8") if Path(path).is_file() else None
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(".", rev=rev)

    def read(path: str) -> str | None:
        try:
            return fs.read_text(str(path), encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError):
            return None
        except Exception as err:  # noqa: BLE001  (an output missing from the cache: DVC's own errors)
            raise RunError(rev, f"{path}: {' '.join(str(err).split())[:200]} (dvc exp pull / dvc pull it)") from None

    return read


def _rows(name: str, path: str, text: str) -> list[PredictionRow]:
    try:
        return parse_predictions(text.splitlines(), path)
    except DataError as err:
        raise RunError(name, str(err)) from None


def _record(kind, folder: Path, read, name: str):
    """A record of the run, or None where it has none or its output is not in this clone's cache: the records
    feed the list of differences (an unknown shows as a dash), the predictions alone the statistics."""
    try:
        text = read(str(kind.file_in(folder)))
    except RunError:
        return None
    return kind.parse(text, f"{name}:{kind.file_in(folder)}") if text is not None else None

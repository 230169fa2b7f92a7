"""The records stages leave beside what they write: a dataclass each, saved and loaded only here.

Each is a small JSON file with one name, as transformers' TrainerState is (trainer_state.json): the train
record in a tuned model folder, the train run's circumstances, the base's identity beside a downloaded
model or dataset, the export record, evaluation's timing, the list of a split's local files, and the
columns tokenize groups and stratifies by. Writers build the dataclass, readers use its attributes. A
record that lacks a field (from an older ftpipe, or edited by hand) is one line naming the file, the
field and the stage to rerun, never a silent default three modules later.

What varies run to run with identical inputs (wall-clock figures, peak memory, the machine, the git
commit and experiment name) is in RunRecord and TimingRecord, never in a model folder: a retrain that
gives the same weights leaves the model's hash, and every stage after it, as they were.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ftpipe.core.errors import DataError

R = TypeVar("R", bound="Record")
EVALUATION_RUNS = Path("runs/evaluate")  # a folder per model evaluated (dvc.yaml): its TimingRecord


def json_object(text: str, source: str | Path, writer: str = "") -> dict:
    """The JSON object in `text`, or one line naming `source`, what is wrong and, if known, the stage to rerun."""
    rerun = f" (written by the {writer} stage: rerun it)" if writer else ""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(source, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}{rerun}") from None
    if not isinstance(data, dict):
        raise DataError(source, f"expected a JSON object, got {type(data).__name__}{rerun}")
    return data


class Record:
    """Save and load for the dataclasses below: FILENAME in a folder, written by the stage WRITER."""

    FILENAME: ClassVar[str]
    WRITER: ClassVar[str]  # the stage that writes it: what to rerun when it is missing or stale

    @classmethod
    def file_in(cls, folder: str | Path) -> Path:
        """Where the record is in `folder` (`path` would clash with BaseRecord's field of that name)."""
        return Path(folder) / cls.FILENAME

    @classmethod
    def exists(cls, folder: str | Path) -> bool:
        return cls.file_in(folder).is_file()

    @classmethod
    def load(cls: type[R], folder: str | Path, missing_ok: bool = False) -> R | None:
        """The record in `folder`; None if there is none and `missing_ok`."""
        path = cls.file_in(folder)
        return None if missing_ok and not path.is_file() else cls.load_file(path)

    @classmethod
    def load_file(cls: type[R], path: str | Path) -> R:
        """The record at `path` (a stage given the file itself, e.g. by dvc.yaml)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(path, f"not found (written by the {cls.WRITER} stage: rerun it)")
        return cls.parse(path.read_text(), path)

    @classmethod
    def parse(cls: type[R], text: str, source: str | Path) -> R:
        """The record from its text (read at another git revision, say); `source` names it in errors.
        Keys it does not know are left out: a newer ftpipe's record still loads."""
        data = json_object(text, source)
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        missing = [name for name, f in known.items() if name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise DataError(source, f"has no {', '.join(missing)}: written by an older ftpipe or by hand "
                                    f"(rerun the {cls.WRITER} stage)")
        return cls(**{name: value for name, value in data.items() if name in known})

    def to_dict(self) -> dict[str, Any]:
        """Its fields, less those at a default of None: a file holds what was recorded, and loading gives the
        defaults back."""
        optional = {f.name for f in dataclasses.fields(self) if f.default is None}  # type: ignore[arg-type]
        return {key: value for key, value in dataclasses.asdict(self).items()  # type: ignore[call-overload]
                if not (value is None and key in optional)}

    def save(self, folder: str | Path) -> Path:
        """Into `folder` under its one name."""
        return self.write(self.file_in(folder))

    def write(self, path: str | Path) -> Path:
        """At `path` (a stage's temporary output, moved into place by ftpipe.core.io.atomic_output)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return Path(path)


@dataclass
class TrainRecord(Record):
    """models/tuned: what train made, from what and how; the card and the reports read it."""

    FILENAME: ClassVar[str] = "ftpipe_train.json"
    WRITER: ClassVar[str] = "train"

    method: dict  # name, type and settings
    train: dict  # the train.* settings a card shows (ftpipe.card.CARD_TRAIN_KEYS)
    base_model: dict  # the base's identity (BaseRecord's fields), not a path in this repository
    precision: str  # what `auto` meant on the machine that trained
    processes: int
    effective_batch: int  # per device x processes x accumulation (rows; with train.batch_tokens, see token_batches)
    trainable_params: int
    total_params: int
    trainable_fraction: float
    versions: dict = field(default_factory=dict)  # every library whose version can change a result
    fingerprint: str | None = None  # of params, data and base: what a checkpoint must match to be resumed
    train_loss: float | None = None
    epoch: float | None = None
    total_flos: float | None = None
    best_step: int | None = None  # with validation: the step the tuned model is
    best_metric: dict | None = None  # {metric: value} at that step
    stopped_early: bool | None = None
    teacher: dict | None = None  # distillation: the teacher's source, size, metrics and speed
    # train.batch_tokens: batches per epoch, mean rows and padded tokens per batch, padding waste (ftpipe.trainer.effective)
    token_batches: dict | None = None


@dataclass
class RunRecord(Record):
    """runs/train: the circumstances of one train run, which change with identical inputs."""

    FILENAME: ClassVar[str] = "ftpipe_run.json"
    WRITER: ClassVar[str] = "train"

    train_runtime: float
    train_samples_per_second: float
    train_steps_per_second: float
    peak_rss_mb: float  # of the main process
    device: str
    git_commit: str | None = None
    git_dirty: bool = False  # uncommitted changes to what defines the run
    dvc_exp_name: str | None = None  # set by `dvc exp run`; absent under `dvc repro`
    dvc_exp_baseline: str | None = None
    resumed_from_step: int | None = None
    machine: dict | None = None  # CPU model, its matmul flags, torch threads, GPU: what makes kernels differ


@dataclass
class BaseRecord(Record):
    """models/base, data/raw: where the base model or the data came from."""

    FILENAME: ClassVar[str] = "ftpipe_source.json"
    WRITER: ClassVar[str] = "download_model"

    name: str | None = None
    source: str | None = None  # package | local | hub | gguf | dvc | tiny
    path: str | None = None
    revision: str | None = None
    commit: str | None = None  # the Hub commit a download resolved to
    repo: str | None = None
    tuned_from: dict | None = None  # a tuned model (source dvc): the base it was tuned from


@dataclass
class ExportRecord(Record):
    """models/export: what was exported and where it went."""

    FILENAME: ClassVar[str] = "ftpipe_export.json"
    WRITER: ClassVar[str] = "export"

    source: str
    merged: bool
    pushed: dict | None  # the Hub repository and URL, when pushed


@dataclass
class TimingRecord(Record):
    """runs/evaluate/<which>: evaluation's speed and memory, which vary run to run (out of plots/<which>, whose
    hash is then the predictions')."""

    FILENAME: ClassVar[str] = "timing.json"
    WRITER: ClassVar[str] = "evaluate"

    samples_per_second: float
    seconds: float | None = None
    peak_rss_mb: float | None = None
    precision: str | None = None


@dataclass
class LocalFilesRecord(Record):
    """data/raw/<split>: the user's files, read in place, with their fingerprints."""

    FILENAME: ClassVar[str] = "ftpipe_files.json"
    WRITER: ClassVar[str] = "download_data"

    files: list  # {"path", "bytes", "sha256"} each


@dataclass
class ColumnsRecord(Record):
    """data/tokenized, data/subset: the columns that keep an example's features together and stratify."""

    FILENAME: ClassVar[str] = "ftpipe_columns.json"
    WRITER: ClassVar[str] = "tokenize"

    group_column: str | None
    stratify_column: str | None


@dataclass
class CheckpointStamp(Record):
    """checkpoints/train: whose checkpoints these are (params, data and base); another run's are discarded."""

    FILENAME: ClassVar[str] = "fingerprint.json"
    WRITER: ClassVar[str] = "train"

    fingerprint: str


@dataclass
class FeaturesRecord(Record):
    """models/tuned of the `features` method: how its head pools the frozen base's hidden states."""

    FILENAME: ClassVar[str] = "features.json"
    WRITER: ClassVar[str] = "train"

    pooling: str


ALL = (TrainRecord, RunRecord, BaseRecord, ExportRecord, TimingRecord, LocalFilesRecord, ColumnsRecord, CheckpointStamp,
       FeaturesRecord)

"""The records stages leave beside what they write, read and written only here.

Each is a small JSON file with one name: the train record in a tuned model folder, the base's
identity beside a downloaded model or dataset, the export record, evaluation's timing, the list of
a split's local files, and the columns tokenize groups and stratifies by. Every reader goes through
`read`, so a record from an older ftpipe, or a hand-edited one, is one line naming the file and
what it lacks, not a KeyError three modules later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftpipe.core.errors import DataError


@dataclass(frozen=True)
class Record:
    filename: str
    writer: str  # the stage that writes it: what to rerun when it is missing or stale
    required: tuple[str, ...] = ()  # keys every reader may count on

    def path(self, folder: str | Path) -> Path:
        return Path(folder) / self.filename

    def exists(self, folder: str | Path) -> bool:
        return self.path(folder).is_file()

    def read(self, folder: str | Path, missing_ok: bool = False) -> dict[str, Any]:
        """The record in `folder`; {} if there is none and `missing_ok`."""
        path = self.path(folder)
        return {} if missing_ok and not path.is_file() else self.read_file(path)

    def read_file(self, path: str | Path) -> dict[str, Any]:
        """The record at `path` (a stage given the file itself, e.g. by dvc.yaml)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(path, f"not found (written by the {self.writer} stage: rerun it)")
        return self.parse(path.read_text(), path)

    def parse(self, text: str, source: str | Path) -> dict[str, Any]:
        """The record from its text (read at another git revision, say); `source` names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(source, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
        if not isinstance(data, dict):
            raise DataError(source, f"expected a JSON object, got {type(data).__name__}")
        missing = [key for key in self.required if key not in data]
        if missing:
            raise DataError(source, f"has no {', '.join(missing)}: written by an older ftpipe or by hand "
                                    f"(rerun the {self.writer} stage)")
        return data

    def write(self, folder: str | Path, data: dict[str, Any]) -> Path:
        path = self.path(folder)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return path


TRAIN = Record("ftpipe_train.json", "train", ("method",))  # models/tuned: what train did
BASE = Record("ftpipe_source.json", "download_model")  # models/base, data/raw: where the base or data came from
EXPORT = Record("ftpipe_export.json", "export", ("merged", "pushed"))  # models/export
TIMING = Record("timing.json", "evaluate", ("samples_per_second",))  # plots/<which>
LOCAL_FILES = Record("ftpipe_files.json", "download_data", ("files",))  # data/raw/<split>: the user's files, read in place
COLUMNS = Record("ftpipe_columns.json", "tokenize", ("group_column", "stratify_column"))  # data/tokenized, data/subset
ALL = (TRAIN, BASE, EXPORT, TIMING, LOCAL_FILES, COLUMNS)

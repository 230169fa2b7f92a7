"""What the pipeline leaves for review, read and written only here: the scores `dvc metrics` reads
(metrics/<which>.json, the details beside them), the prediction rows (predictions/<which>.jsonl), the
comparison (metrics/compare.json) and preprocess's counts (metrics/preprocess.json).

Their paths come from dvc.yaml; their shapes are these dataclasses. On disk they stay the flat JSON that
`dvc metrics show` and `dvc exp show` read, so a history of runs keeps reading the same. A file that is
not what its reader needs is one line naming the file (and the row) and the stage to rerun.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftpipe.core.errors import DataError
from ftpipe.core.io import atomic_output, write_json
from ftpipe.core.records import json_object


def _object(path: str | Path, text: str | None = None, writer: str = "") -> dict:
    """The JSON object in `path` (or `text`, read elsewhere and named by `path`), or one line saying why not."""
    if text is None:
        if not Path(path).is_file():
            raise DataError(path, f"not found (written by the {writer} stage: rerun it)")
        text = Path(path).read_text()
    return json_object(text, path, writer)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Scores:
    """metrics/<which>.json: the headline scores, the task's headline first; or metrics/details/<which>.json:
    every score, per class too, and the counts."""

    values: dict[str, Any]

    @classmethod
    def load_file(cls, path: str | Path, text: str | None = None) -> Scores:
        """`text`: the file's content read elsewhere (another git revision), `path` naming it in errors."""
        return cls(_object(path, text, "evaluate"))

    def write(self, path: str | Path) -> None:
        write_json(path, self.values)

    @property
    def headline(self) -> str | None:
        return next(iter(self.numbers()), None)

    def numbers(self, prefix: str = "") -> dict[str, float]:
        """Every number, nested ones as `outer.inner` (per-class scores), in the file's order."""
        out: dict[str, float] = {}
        for key, value in self.values.items():
            if isinstance(value, dict):
                out.update(Scores(value).numbers(f"{prefix}{key}."))
            elif _number(value):
                out[f"{prefix}{key}"] = value
        return out


@dataclass(frozen=True)
class Interval:
    """A metric's tuned-minus-base delta, its paired-bootstrap 95% interval and p-value."""

    delta: float
    ci95: tuple[float, float]
    p_value: float

    @classmethod
    def from_dict(cls, tested: dict) -> Interval:
        """From the {delta, ci95, p_value} that ftpipe.significance gives and metrics/compare.json holds."""
        return cls(tested["delta"], tuple(tested["ci95"]), tested["p_value"])


@dataclass
class Comparison:
    """metrics/compare.json: tuned minus base for every metric; with the task's per-example statistics, each
    headline metric's interval, and McNemar's p-value where every example is right or wrong."""

    delta: dict[str, float]
    significance: dict[str, Interval] = field(default_factory=dict)
    mcnemar_p: float | None = None

    @classmethod
    def load_file(cls, path: str | Path, missing_ok: bool = False) -> Comparison | None:
        if missing_ok and not Path(path).is_file():
            return None
        data = _object(path, writer="compare")
        tested = dict(data.pop("significance", None) or {})
        mcnemar = tested.pop("mcnemar", None) or {}
        try:
            significance = {name: Interval.from_dict(t) for name, t in tested.items()}
        except (KeyError, TypeError, ValueError):
            raise DataError(path, "significance: each metric needs delta, ci95 and p_value (rerun the compare stage)") from None
        return cls({k: v for k, v in data.items() if _number(v)}, significance, mcnemar.get("p_value"))

    def write(self, path: str | Path) -> None:
        tested: dict[str, Any] = {name: {"delta": t.delta, "ci95": list(t.ci95), "p_value": t.p_value}
                                  for name, t in self.significance.items()}
        if self.mcnemar_p is not None:
            tested["mcnemar"] = {"p_value": self.mcnemar_p}
        write_json(path, {**self.delta, **({"significance": tested} if tested else {})})


ROW_FIELDS = ("id", "input", "reference", "prediction", "score")


@dataclass(frozen=True)
class PredictionRow:
    """One line of predictions/<which>.jsonl. Every task writes these five; its own (QA's exact match, the
    summaries' references, the entities' spans) are in `fields`."""

    id: str
    input: Any
    reference: Any
    prediction: Any
    score: float  # in [0, 1], higher is better: what compare ranks fixed and broken examples by
    fields: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, row: dict, source: str = "predictions") -> PredictionRow:
        missing = [name for name in ROW_FIELDS if name not in row]
        if missing or not _number(row["score"]):
            raise DataError(source, f"field {(missing or ['score'])[0]}: {'missing' if missing else 'not a number'} "
                                    "(rerun the evaluate stage)")
        return cls(str(row["id"]), row["input"], row["reference"], row["prediction"], row["score"],
                   {k: v for k, v in row.items() if k not in ROW_FIELDS})

    def to_dict(self) -> dict:
        """The row as the task wrote it (what its example_stats and plots read)."""
        return {"id": self.id, "input": self.input, "reference": self.reference, "prediction": self.prediction,
                "score": self.score, **self.fields}


def read_predictions(path: str | Path) -> list[PredictionRow]:
    if not Path(path).is_file():
        raise DataError(path, "not found (written by the evaluate stage: rerun it)")
    with open(path, encoding="utf-8") as fh:
        return parse_predictions(fh, path)


def parse_predictions(lines, source: str | Path) -> list[PredictionRow]:
    """The rows of a predictions file's lines (read at another git revision, say); `source` names it in errors."""
    return [PredictionRow.from_dict(json_object(line, f"{source}, row {number}", "evaluate"), f"{source}, row {number}")
            for number, line in enumerate(lines, 1)]


def write_predictions(path: str | Path, rows: list[dict]) -> None:
    """A task's rows as it made them, one JSON object a line, each checked first to carry the five fields
    readers rely on: a task that forgot one fails here, not in compare."""
    for number, row in enumerate(rows, 1):
        PredictionRow.from_dict(row, f"prediction row {number} of the task")
    with atomic_output(path) as tmp:
        tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@dataclass
class PreprocessCounts:
    """metrics/preprocess.json: records kept and dropped per split, and the overlap between them."""

    splits: dict[str, dict]

    @classmethod
    def load_file(cls, path: str | Path) -> PreprocessCounts:
        return cls(_object(path, writer="preprocess"))

    def write(self, path: str | Path) -> None:
        write_json(path, self.splits)

    def records(self, split: str) -> int | None:
        return (self.splits.get(split) or {}).get("records")


@dataclass
class Evaluation:
    """What a model card says of a run's evaluation: base and tuned headline scores, their intervals, the sizes."""

    base: dict[str, float]
    tuned: dict[str, float]
    significance: dict[str, Interval] = field(default_factory=dict)
    eval_examples: int | None = None  # evaluated
    eval_records: int | None = None  # clean records in the eval split (the subset may be smaller)
    train_records: int | None = None

    @classmethod
    def load_files(cls, base_metrics: Path, tuned_metrics: Path, compare: Path, details: Path, preprocess: Path) -> Evaluation:
        counts = PreprocessCounts.load_file(preprocess)
        compared = Comparison.load_file(compare)
        return cls(Scores.load_file(base_metrics).numbers(), Scores.load_file(tuned_metrics).numbers(),
                   compared.significance if compared else {}, Scores.load_file(details).values.get("examples"),
                   counts.records("eval"), counts.records("train"))

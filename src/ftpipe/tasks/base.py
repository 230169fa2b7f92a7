"""The interface every task plug-in implements, and the pieces they share."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ftpipe.core.errors import ConfigError
from ftpipe.core.io import READABLE, read_records

MIN_LENGTH = 8  # tokens: below it there is no room for special tokens and text (0 and 1 once meant "no truncation")
# Model families whose position ids start after the padding index: usable positions = max_position_embeddings - pad - 1.
PADDED_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "xmod", "data2vec-text"}


class RecordError(ValueError):
    """A record fails validation; preprocess adds the file and record number."""

    def __init__(self, field: str | None, message: str):
        self.field = field
        super().__init__(message)


def visible(text) -> bool:
    """A string with something a tokenizer turns into a token: not only spaces, NUL bytes, zero-width or
    other format characters (`str.strip()` keeps NUL and U+200B, so such a text was a training row)."""
    return isinstance(text, str) and any(c.isprintable() and not c.isspace() and unicodedata.category(c) != "Cf" for c in text)


def record_id(record: dict) -> str:
    """A record's id as a string, "" for none: an integer 0 is the id "0", not "no id" (as read_records
    makes it; SQuAD's nested JSON and plug-in readers bypass that)."""
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(value or "")


# The capabilities a task may offer (Task.capabilities) and a method need (MethodConfig.needs).
CAPABILITIES = {
    "example_label": "one class label per example (a classifier's logits to pool or distil)",
    "causal_lm": "causal-LM rows, a prompt and its answer (a prefix of past key-values fits them)",
    "position_free_labels": "labels that point at no token position (tokens prepended to the input leave them right)",
}


@dataclass
class TaskConfig:
    """Fields every task section has; plug-ins extend it."""

    name: str = "task"
    type: str = "classification"
    max_length: int = 256  # tokens kept per example (longer ones are truncated or windowed)

    def __post_init__(self):  # plug-ins' own __post_init__ call this first
        if self.max_length < MIN_LENGTH:
            raise ConfigError("task.max_length", f"must be >= {MIN_LENGTH}, got {self.max_length}")

    def check_model_limit(self, model_dir: Path, reserved: int = 0, reserved_for: str = "") -> None:
        """max_length within the model's positions: past them, training fails with an index error (or worse, on GPU).

        `reserved` positions go to something else before the text (prompt tuning's virtual tokens)."""
        path = Path(model_dir) / "config.json"
        config = json.loads(path.read_text()) if path.is_file() else {}
        key = next((k for k in ("max_position_embeddings", "n_positions") if isinstance(config.get(k), int)), None)
        if key is None:  # relative positions (T5, ...): no fixed limit to check
            return
        pad = config.get("pad_token_id")
        limit = config[key] - ((1 if pad is None else pad) + 1 if config.get("model_type") in PADDED_POSITIONS else 0) - reserved
        if self.max_length > limit:
            less = f", less {reserved} for {reserved_for}" if reserved else ""
            raise ConfigError("task.max_length", f"{self.max_length} is more than the model's {limit} positions "
                                                 f"({key} in {path}{less}): use task.max_length <= {limit}")


class Task:
    """A task plug-in: schema, cleaning, tokenization, model head, prediction and metrics.

    Everything the generic stages, `ftpipe-predict` and the model card need to know about a task is
    here, so none of them names a task type.
    """

    auto_class: str = ""  # the transformers Auto class for the head
    peft_task_type: str = ""  # what peft calls the head
    # The fields of a clean row the model reads: two rows with the same inputs are the same example
    # to the model, whatever their ids or labels say (preprocess's duplicate and overlap checks).
    input_fields: tuple[str, ...] = ()
    # Column of the tokenized data that ties several features to one example (QA windows): subsets
    # and the validation split take whole examples. None: one feature per example.
    group_column: str | None = None
    # Column of the tokenized data holding a class id per feature: subsets and the validation split
    # can stratify by it. None: nothing to stratify by.
    stratify_column: str | None = None
    # Weight names of a head the base model lacks: transformers reports them as missing when a base
    # loads for this task, which is expected (ftpipe.models.loading tells ftpipe.core.quiet to hide that report, and only that).
    head_keys: tuple[str, ...] = ()
    hub_pipeline_tag: str | None = None  # the model card's Hub metadata: pipeline and metric ids
    hub_metrics: tuple[str, ...] = ()
    score_scale: str = "scores are fractions in [0, 1]"  # how metrics/*.json reads, for the card
    headline_metric: str | None = None  # the metric the run's summary leads with (None: the first `metrics` returns)
    metric_scale: str = "0-1"  # the headline's scale, as the summary prints it
    # The file types `read` takes: data.files entries of any other type are refused when params load.
    file_suffixes: tuple[str, ...] = READABLE
    # Training rows are causal-LM rows (input_ids, labels with -100 where nothing is learned) that
    # train.packing may flatten into one unpadded row per batch (ftpipe.packing).
    packs: bool = False
    # What the task offers a method that needs more than a trainable model (a method's `needs`), from
    # CAPABILITIES below: methods fit tasks by what they have, never by a list of task names.
    capabilities: frozenset[str] = frozenset()
    # Records are conversations whose last user turn the model answers: ftpipe-predict --chat (a turn at a
    # time from a terminal, or one conversation per record of --file) and --system (chat_record below).
    converses: bool = False
    # Evaluation generates token by token (model.generate): in bf16 or fp16 the model is then stored in that
    # dtype for evaluation and prediction (ftpipe.precision.for_inference).
    decodes: bool = False

    def __init__(self, cfg):
        self.cfg = cfg
        # Counts a plug-in keeps while cleaning (e.g. repaired answers); preprocess adds them to its metrics.
        self.stats: Counter = Counter()

    @property
    def model_class(self):
        # Imported on use: preprocess never needs transformers, and it is slow to import.
        import transformers

        return getattr(transformers, self.auto_class)

    # --- preprocess -------------------------------------------------------------
    def read(self, path: Path, columns: dict[str, str]) -> Iterator[tuple[int, dict]]:
        """Yield (record number, raw record) from one input file."""
        return read_records(path, columns)

    def clean(self, record: dict, data_cfg) -> dict:
        """Validate and normalise one raw record; raise RecordError naming the field."""
        raise NotImplementedError

    # --- tokenize ---------------------------------------------------------------
    def tokenize(self, dataset, tokenizer, split: str, num_proc: int, batch_size: int):
        raise NotImplementedError

    # --- model ------------------------------------------------------------------
    def model_kwargs(self) -> dict:
        """Extra from_pretrained kwargs for the head (number of labels, ...)."""
        return {}

    def prepare(self, tokenizer, model=None) -> None:
        """Fix up tokenizer and model for this task (pad token, padding side)."""
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if model is not None:
            # Decoder classifiers pool the last token that is not padding: the model must
            # know the tokenizer's pad id, whatever its config said.
            model.config.pad_token_id = tokenizer.pad_token_id

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    # --- inference --------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg) -> list[dict]:
        """One row per example of `examples` that has features: its id, input and prediction (with
        the model's confidence where it has one). `cfg` is the evaluate section. Shared by evaluate,
        `ftpipe-predict` and the benchmarks."""
        raise NotImplementedError

    def predict(self, model, tokenizer, features, examples, cfg) -> list[dict]:
        """Evaluate's rows: `infer`'s, scored: id, input, reference, prediction and a per-example
        score in [0, 1] (what compare ranks fixed and broken examples by)."""
        raise NotImplementedError

    # --- ftpipe-predict on new records -------------------------------------------
    @property
    def cli_field(self) -> str | None:
        """The record field that `--text` and a plain line on stdin fill; None: records only."""
        return None

    @property
    def cli_inputs(self) -> dict[str, str]:
        """ftpipe-predict's one-record flags this task reads, by flag name (`context`, `question`), and the
        record field each fills; {}: none (a flag given anyway is one line naming the task's inputs)."""
        return {}

    def line_record(self, line: str) -> dict:
        """A record from one plain line of stdin."""
        return {self.cli_field: line}

    def prediction_record(self, record: dict) -> dict:
        """A record to predict, completed with what `clean` requires and prediction never reads
        (a label, a reference): tokenize then treats it as an evaluation row."""
        return record

    def chat_record(self, record: dict, system: str | None = None) -> dict:
        """A record in this task's own format, made ready to answer its last user turn, with `system` as its
        system prompt where it has none (tasks that `converse` only). ftpipe-predict's terminal loop hands
        its conversation so far in OpenAI's form: {"messages": [{"role": ..., "content": ...}, ...]}."""
        raise NotImplementedError

    # --- model card ---------------------------------------------------------------
    def card_example(self, adapter: bool) -> tuple[list[str], list[str]]:
        """Imports and Python lines that run the card's loaded `model` and `tokenizer` once on an
        example, with plain transformers (the tests run them as written)."""
        raise NotImplementedError

    def metrics(self, rows: list[dict]) -> dict:
        raise NotImplementedError

    def example_stats(self, rows: list[dict]):
        """(statistics, to_metrics): one row of additive statistics per evaluated example, and a function
        (summed statistics, number of examples) -> {headline metric: value} that gives back the headline
        metrics from their sums, on arrays of sums too. ftpipe.significance redraws the examples with it.
        Default: the per-example score's mean, as `score`."""
        import numpy as np

        return np.array([[r["score"]] for r in rows], dtype=np.float64), lambda sums, n: {"score": sums[..., 0] / n}

    def write_plots(self, rows: list[dict], out_dir: Path) -> None:
        """Optional plot data for `dvc plots`."""


@dataclass(frozen=True)
class Plot:
    """One `dvc plots` definition of a task: column `y` against column `x` of `file`, which evaluation writes
    into plots/<which>/ (Task.write_plots) for each model in `models`, one series each."""

    name: str
    file: str  # relative to plots/<which>/
    x: str
    y: str
    template: str
    title: str
    models: tuple[str, ...] = ("base", "tuned")

    def spec(self) -> dict:
        """The definition as dvc.yaml's top-level `plots` holds it."""
        return {self.name: {"template": self.template, "x": self.x, "title": self.title,
                            "y": {f"plots/{which}/{self.file}": self.y for which in self.models}}}


def ratio(numerator, denominator):
    """numerator / denominator elementwise where the denominator is > 0, else 0 (sklearn's zero_division=0):
    for example_stats' metrics, on the sums of one evaluation set or of many resamples at once."""
    import numpy as np

    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape), where=denominator > 0)


def load_metric(script: Path):
    """A task's metric, an `evaluate` module kept in its own package (so it loads offline, and editing one
    task's metric reruns only that task's pipelines): `load_metric(Path(__file__).with_name("rouge.py"))`.
    Online, a Hub metric (`evaluate.load("rouge")`) is the same call with a name."""
    import evaluate

    return evaluate.load(str(script))

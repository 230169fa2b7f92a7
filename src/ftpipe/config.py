"""Typed params: one schema per params.yaml section, validated when a stage loads it.

`conf/` is composed by Hydra into `params.yaml` (DVC does this on `dvc exp run`;
`python -m ftpipe.config` does it by hand). Stages read `params.yaml`, never `conf/`.
A typo'd key, a wrong type or a bad value is one clear ConfigError before any heavy work.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftpipe.errors import ConfigError

CONF_DIR = Path("conf")  # stages and tools run from the repository root, as DVC does
PARAMS = Path("params.yaml")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # what `auto` means: ftpipe/precision.py


def _check(key: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(key, message)


@dataclass
class DataConfig:
    """Where the raw dataset comes from (`download`) and how bad records are handled (`preprocess`)."""

    source: str = "synthetic"  # synthetic | hub | local
    hub_path: Optional[str] = None  # e.g. Yelp/yelp_review_full
    hub_name: Optional[str] = None  # dataset config name, if any
    revision: Optional[str] = None  # pinned commit of the Hub dataset
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "eval": "test"})
    files: dict[str, list[str]] = field(default_factory=dict)  # split -> local files
    columns: dict[str, str] = field(default_factory=dict)  # ftpipe field -> column in the files
    label_offset: int = 0  # 1 when integer labels count from 1 (Yelp stars 1-5)
    on_bad_record: str = "error"  # error | drop
    on_overlap: str = "warn"  # warn | error: records shared by train and eval (same id or same text)
    eval_from_train: float = 0.0  # > 0: hold out this fraction of train as eval (by a hash of the id)
    synthetic: dict[str, Any] = field(default_factory=dict)  # generator settings

    def __post_init__(self):
        _check("data.source", self.source in ("synthetic", "hub", "local"), f"unknown source '{self.source}' (synthetic, hub or local)")
        _check("data.eval_from_train", 0 <= self.eval_from_train < 1, "a fraction in [0, 1)")
        _check("data.on_bad_record", self.on_bad_record in ("error", "drop"), "must be 'error' or 'drop'")
        _check("data.on_overlap", self.on_overlap in ("warn", "error"), "must be 'warn' or 'error'")
        if self.source == "hub":
            _check("data.hub_path", bool(self.hub_path), "required when data.source is hub")
        if self.source == "local":
            _check("data.files", "train" in self.files, "needs a 'train' list of files")
            _check("data.files", bool(self.files.get("eval")) != (self.eval_from_train > 0),
                   "give either an 'eval' list of files or data.eval_from_train, not both")
            for split, paths in self.files.items():
                for path in paths:
                    _check(f"data.files.{split}", Path(path).exists(), f"file not found: {path}")


@dataclass
class ModelConfig:
    """The pretrained base model that `download` brings in and the methods adapt."""

    name: str = "minilm"
    source: str = "package"  # package | hub | local | gguf | tiny
    path: Optional[str] = None  # Hub id, local directory, or Python package carrying the model
    revision: Optional[str] = None  # pinned Hub commit
    gguf_file: Optional[str] = None  # file inside `path` for source=gguf
    trust_remote_code: bool = False
    tiny: dict[str, Any] = field(default_factory=dict)  # config kwargs for source=tiny
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])

    def __post_init__(self):
        _check("model.source", self.source in ("package", "hub", "local", "gguf", "tiny"), f"unknown source '{self.source}'")
        if self.source != "tiny":
            _check("model.path", bool(self.path), f"required when model.source is {self.source}")
        if self.source == "local":
            _check("model.path", Path(self.path).is_dir(), f"directory not found: {self.path}")
        if self.source == "gguf":
            _check("model.gguf_file", bool(self.gguf_file), "required when model.source is gguf")


@dataclass
class TokenizeConfig:
    # null: map in this process, where the fast tokenizer spreads each batch over every core.
    # N: N forked processes (datasets then turns the tokenizer's own threads off, even for N = 1).
    num_proc: Optional[int] = None
    batch_size: int = 1000  # rows per batched map call

    def __post_init__(self):
        _check("tokenize.num_proc", self.num_proc is None or self.num_proc >= 1, "must be null or >= 1")


@dataclass
class SubsetConfig:
    """Seeded train/eval subsets drawn from the tokenized data (null = everything)."""

    train_size: Optional[int] = None
    eval_size: Optional[int] = None
    seed: int = 42
    stratify: bool = False
    first: bool = False  # take the first N examples in file order instead of a seeded draw

    def __post_init__(self):
        for key in ("train_size", "eval_size"):
            value = getattr(self, key)
            _check(f"subset.{key}", value is None or value > 0, "must be positive or null")


@dataclass
class TrainConfig:
    lr: float = 5e-5
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup: float = 0.0  # fraction of the steps (transformers' warmup_steps accepts a float < 1)
    scheduler: str = "linear"
    seed: int = 42
    group_by_length: bool = True  # batches of similar length: less padding
    logging_steps: int = 10
    save_steps: int = 0  # checkpoint every N steps for resume (0 = never)
    full_determinism: bool = False
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: see ftpipe/precision.py)
    gradient_checkpointing: bool = False
    optim: Optional[str] = None  # null: the transformers default (fused AdamW where torch has it)
    torch_compile: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # passed to TrainingArguments as is

    def __post_init__(self):
        _check("train.lr", self.lr > 0, f"must be > 0, got {self.lr}")
        _check("train.batch_size", self.batch_size >= 1, f"must be >= 1, got {self.batch_size}")
        _check("train.grad_accum", self.grad_accum >= 1, f"must be >= 1, got {self.grad_accum}")
        _check("train.epochs", self.epochs > 0 or self.max_steps > 0, "epochs or max_steps must be > 0")
        _check("train.warmup", 0 <= self.warmup < 1 or float(self.warmup).is_integer(), "a fraction in [0, 1) or a whole number of steps")
        _check("train.precision", self.precision in PRECISIONS, "auto, fp32, bf16 or fp16")
        _check("train.save_steps", self.save_steps >= 0, f"must be >= 0 (0: no checkpoints), got {self.save_steps}")
        _check("train.logging_steps", self.logging_steps >= 1, f"must be >= 1, got {self.logging_steps}")
        if self.scheduler != "linear" or self.optim or self.extra:  # importing transformers takes seconds: only then
            _check_trainer_names(self)


def _check_trainer_names(cfg: TrainConfig) -> None:
    """scheduler, optim and extra against transformers' own lists: a typo is one line at load, not a
    TrainingArguments traceback once the train stage has loaded the model."""
    import dataclasses
    import difflib

    from transformers import TrainingArguments
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    schedulers = [s.value for s in SchedulerType]
    _check("train.scheduler", cfg.scheduler in schedulers, f"unknown scheduler '{cfg.scheduler}' ({', '.join(schedulers)})")
    optimizers = [o.value for o in OptimizerNames]
    _check("train.optim", cfg.optim is None or cfg.optim in optimizers, f"unknown optimizer '{cfg.optim}' ({', '.join(optimizers)})")
    fields = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    for key in cfg.extra:
        close = difflib.get_close_matches(key, fields, n=3)
        _check(f"train.extra.{key}", key in fields, "not a TrainingArguments argument"
               + (f" (did you mean {', '.join(close)}?)" if close else " (see transformers' TrainingArguments)"))


@dataclass
class EvaluateConfig:
    batch_size: int = 16
    seed: int = 0  # seeds the fresh head of the base model
    sort_by_length: bool = True  # batches of similar length: less padding
    report_examples: int = 5  # fixed/broken examples shown in reports/compare.md
    generation: dict[str, Any] = field(default_factory=dict)  # generate() kwargs for generative tasks
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: see ftpipe/precision.py)

    def __post_init__(self):
        _check("evaluate.batch_size", self.batch_size >= 1, "must be >= 1")
        _check("evaluate.precision", self.precision in PRECISIONS, "auto, fp32, bf16 or fp16")


SCHEMAS = {
    "data": DataConfig,
    "model": ModelConfig,
    "tokenize": TokenizeConfig,
    "subset": SubsetConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


@dataclass
class Params:
    """The sections a stage asked for; the others stay None so a stage cannot read what it does not declare."""

    task: Any = None
    data: Optional[DataConfig] = None
    model: Optional[ModelConfig] = None
    method: Any = None
    tokenize: Optional[TokenizeConfig] = None
    subset: Optional[SubsetConfig] = None
    train: Optional[TrainConfig] = None
    evaluate: Optional[EvaluateConfig] = None


def _validate(section: str, schema, value) -> Any:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), value or {})
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = f"{section}.{err.full_key}" if getattr(err, "full_key", None) else section
        message = str(err).splitlines()[0]
        raise ConfigError(key, message) from None


def validate(raw: dict, sections: tuple[str, ...]) -> Params:
    """Check the named sections of a params dict against their schemas."""
    out = Params()
    for section in sections:
        if section not in raw:
            raise ConfigError(section, "section missing")
        if section == "task":  # plug-in sections: the schema is the plug-in's own
            from ftpipe.tasks import task_schema

            schema = task_schema(raw["task"])
        elif section == "method":
            from ftpipe.methods import method_schema

            schema = method_schema(raw["method"])
        else:
            schema = SCHEMAS[section]
        setattr(out, section, _validate(section, schema, raw[section]))
    if out.task is not None and out.method is not None and out.task.type not in out.method.tasks:
        raise ConfigError("method", f"'{out.method.name}' does not fit a {out.task.type} task (it fits: {', '.join(out.method.tasks)})")
    return out


def load_params(*sections: str, path: Path = PARAMS) -> Params:
    """Load and validate the params sections a stage declares in dvc.yaml."""
    if not path.exists():
        raise ConfigError(str(path), "file not found (run from the repository root)")
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(str(path), f"not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "expected a mapping of params sections")
    return validate(raw, sections)


def compose(overrides: list[str] | None = None) -> dict:
    """Compose conf/ as DVC's Hydra integration does, as a plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR.resolve()), version_base=None):
        cfg: DictConfig = hydra_compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


def main() -> None:
    """`python -m ftpipe.config [overrides...]`: rewrite params.yaml from conf/."""
    from hydra.errors import HydraException, OverrideParseException

    from ftpipe.errors import FtpipeError

    try:
        params = compose(sys.argv[1:])
    except (HydraException, OmegaConfBaseException, FtpipeError) as err:
        # A mistyped override: Hydra's message (its options, without its search path) on one line, not a traceback.
        message = str(err).split("Config search path:")[0]
        if isinstance(err, OverrideParseException):  # Hydra's parser does not say which override
            message = f"overrides {' '.join(sys.argv[1:])}: {message}"
        print("error: " + " ".join(message.split()), file=sys.stderr)
        sys.exit(1)
    with open(PARAMS, "w") as fh:
        yaml.safe_dump(params, fh, sort_keys=False)
    print(f"wrote {PARAMS}")


if __name__ == "__main__":
    main()

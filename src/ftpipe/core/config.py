"""The params schemas: one dataclass per params.yaml section that ftpipe itself defines.

The task and method sections take their schemas from their plug-ins; loading, validating and
composing params is ftpipe.params. A typo'd key, a wrong type or a bad value is one clear
ConfigError before any heavy work.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ftpipe.core.errors import check, shown
# The train section's schema is a module of its own (the longest); every schema is imported from here.
from ftpipe.core.train_config import PRECISIONS, SET_BY, DistributedConfig, TrainConfig  # noqa: F401


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
        check("data.source", self.source in ("synthetic", "hub", "local"), f"unknown source '{self.source}' (synthetic, hub or local)")
        check("data.eval_from_train", 0 <= self.eval_from_train < 1, "a fraction in [0, 1)")
        check("data.on_bad_record", self.on_bad_record in ("error", "drop"), "must be 'error' or 'drop'")
        check("data.on_overlap", self.on_overlap in ("warn", "error"), "must be 'warn' or 'error'")
        if self.source == "hub":
            check("data.hub_path", bool(self.hub_path), "required when data.source is hub")
        if self.source == "local":
            check("data.files", "train" in self.files, "needs a 'train' list of files")
            check("data.files", bool(self.files.get("eval")) != (self.eval_from_train > 0),
                   "give either an 'eval' list of files or data.eval_from_train, not both")
            for split, paths in self.files.items():
                for path in paths:
                    check_data_file(f"data.files.{split}", path)


def check_data_file(key: str, path: str) -> None:
    """A data.files entry must be a readable file: checked when params load, before anything reads,
    fingerprints or caches it (a directory is one line, not a copy). Its type: check_data_type."""
    file = Path(path)
    check(key, file.exists(), f"file not found: {path}")
    check(key, file.is_file(), f"not a regular file: {path}")
    check(key, os.access(file, os.R_OK), f"not readable: {path}")


def check_data_type(key: str, path: str, suffixes: tuple[str, ...]) -> None:
    """A data.files entry must be of a type the task reads (`suffixes`: its plug-in's Task.file_suffixes,
    checked by params.validate, where the task type is known), and so must what it links to."""
    file = Path(path)
    check(key, file.suffix.lower() in suffixes, f"unsupported file type '{file.suffix}': {path} (use {', '.join(suffixes)})")
    # A link is what it points to: `x.csv` -> `.env` would be read, printed and fingerprinted as a CSV.
    target = file.resolve()
    check(key, target.suffix.lower() in suffixes,
          f"{path} links to '{shown(target.name)}', not a file of a type the task reads ({', '.join(suffixes)})")


def data_inputs(source: str, files: dict | None) -> list[dict]:
    """One entry per local data file: its path and the name of its fingerprint in data/inputs.

    dvc.yaml makes each path a dependency (a `foreach` stage per file: DVC cannot take a list as deps).
    The name is the file's split, position and name with anything but letters, digits, `.`, `-` and `_`
    replaced: it becomes a path DVC tracks, so it must be safe wherever a path goes.
    """
    if source != "local" or not files:
        return []
    return [{"path": str(path), "name": f"{split}-{i:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(str(path)).name)}.json"}
            for split, paths in files.items() for i, path in enumerate(paths or [])]


@dataclass
class ModelConfig:
    """The pretrained base model that `download` brings in and the methods adapt."""

    name: str = "minilm"
    source: str = "package"  # package | hub | local | gguf | tiny | dvc
    path: Optional[str] = None  # Hub id, local directory, Python package, or (dvc) the model's path in `repo`
    revision: Optional[str] = None  # pinned Hub commit; for dvc: a git commit, tag, branch or experiment
    repo: Optional[str] = None  # dvc: the repository that produced the model (a git URL, or "." for this one)
    gguf_file: Optional[str] = None  # file inside `path` for source=gguf
    trust_remote_code: bool = False
    tiny: dict[str, Any] = field(default_factory=dict)  # config kwargs for source=tiny
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])

    def __post_init__(self):
        check("model.source", self.source in ("package", "hub", "local", "gguf", "tiny", "dvc"), f"unknown source '{self.source}'")
        if self.source == "dvc":
            check("model.repo", bool(self.repo), "required when model.source is dvc (a git URL, or . for this repository)")
            check("model.revision", bool(self.revision), "required when model.source is dvc: the commit or experiment that made the model")
        if self.source != "tiny":
            check("model.path", bool(self.path), f"required when model.source is {self.source}")
        if self.source == "local":
            check("model.path", Path(self.path).is_dir(), f"directory not found: {self.path}")
        if self.source == "gguf":
            check("model.gguf_file", bool(self.gguf_file), "required when model.source is gguf")


@dataclass
class TokenizeConfig:
    # null: map in this process, where the fast tokenizer spreads each batch over every core.
    # N: N forked processes (datasets then turns the tokenizer's own threads off, even for N = 1).
    num_proc: Optional[int] = None
    batch_size: int = 1000  # rows per batched map call

    def __post_init__(self):
        check("tokenize.num_proc", self.num_proc is None or self.num_proc >= 1, "must be null or >= 1")
        check("tokenize.batch_size", self.batch_size >= 1, f"must be >= 1, got {self.batch_size}")


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
            check(f"subset.{key}", value is None or value > 0, "must be positive or null")


@dataclass
class EvaluateConfig:
    batch_size: int = 16
    seed: int = 0  # seeds the fresh head of the base model
    sort_by_length: bool = True  # batches of similar length: less padding
    batch_tokens: Optional[int] = None  # batches of at most this many tokens (padding included), sorted; null: batch_size rows
    report_examples: int = 5  # fixed/broken examples shown in reports/compare.md
    bootstrap_resamples: int = 1000  # compare's paired bootstrap: the resamples behind each interval and p-value (0: none)
    generation: dict[str, Any] = field(default_factory=dict)  # generate() kwargs for generative tasks
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 | int8 (CPU: dynamic quantization; see ftpipe/precision.py)

    def __post_init__(self):
        check("evaluate.batch_size", self.batch_size >= 1, "must be >= 1")
        check("evaluate.batch_tokens", self.batch_tokens is None or self.batch_tokens >= 1, f"must be >= 1 or null, got {self.batch_tokens}")
        # Fewer resamples give an interval that need not even contain the delta, and a p-value that cannot go below 2/(B+1).
        check("evaluate.bootstrap_resamples", self.bootstrap_resamples == 0 or self.bootstrap_resamples >= 100,
              f"must be 0 (no intervals) or >= 100, got {self.bootstrap_resamples}")
        check("evaluate.report_examples", self.report_examples >= 0, f"must be >= 0, got {self.report_examples}")
        check("evaluate.precision", self.precision in PRECISIONS + ("int8",), "auto, fp32, bf16, fp16 or int8")


@dataclass
class ExportConfig:
    """Stage export: a PEFT adapter merged into its base, and the model pushed to the Hub (ftpipe/export.py)."""

    # Both off by default: the stage then does nothing but say so, so an offline `dvc repro` stays green
    # and a LoRA experiment does not write a full-size merged model on every run.
    merge: bool = False  # fold a PEFT adapter into its base (models/export); a full model goes as it is
    push_to_hub: bool = False
    repo_id: Optional[str] = None  # <user or org>/<name> on the Hub, required to push
    private: bool = True  # a new Hub repo is private unless this says otherwise

    def __post_init__(self):
        if self.push_to_hub:
            check("export.repo_id", bool(self.repo_id) and 0 < str(self.repo_id).count("/") <= 1,
                   f"set it to <user or org>/<name> to push (got {self.repo_id!r})")

"""Method plug-ins: how a base model is adapted (which weights train, how it is fitted, saved and loaded).

A method type names a module here holding a `Config` schema and a `Method` class, as task types
do in `ftpipe.tasks`. `conf/method/<name>.yaml` picks the type and its settings; adding a PEFT
method is one such file (`type: peft`), a method with its own fit is one module plus one file.
The tuned model directory records its method type, and `load_tuned` dispatches on that record.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ftpipe.core.records import TrainRecord
from ftpipe.core.errors import ConfigError

METHOD_TYPES = {
    "full": "ftpipe.methods.full",
    "freeze": "ftpipe.methods.freeze",
    "features": "ftpipe.methods.features",
    "distill": "ftpipe.methods.distill",
    "peft": "ftpipe.methods.peft",
}


def _module(method_type: str):
    if method_type not in METHOD_TYPES:
        raise ConfigError("method.type", f"unknown method type '{method_type}' (known: {', '.join(sorted(METHOD_TYPES))})")
    return importlib.import_module(METHOD_TYPES[method_type])


def method_schema(raw_method: dict):
    """The dataclass that validates a `method` params section."""
    raw_method = raw_method or {}
    return _module(raw_method.get("type") or raw_method.get("name", "<missing>")).Config


def get_method(cfg):
    """The plug-in instance for a validated `method` section."""
    return _module(cfg.type).Method(cfg)


def load_tuned(task, tuned_dir: Path, base_dir: Path, tokenizer, trust_remote_code: bool = False):
    """A tuned model from the train stage, loaded the way its method saved it.

    The record only chooses among ftpipe's own loaders; the base comes from `base_dir`, the path the
    caller was given, never from a path recorded inside the tuned directory.
    """
    tuned_dir = Path(tuned_dir)
    made = TrainRecord.load(tuned_dir, missing_ok=True)
    method_type = made.method.get("type") if made else None
    if method_type in ("lora", "qlora"):  # the names before lora and qlora became peft configs
        method_type = "peft"
    if method_type is None:  # a plain model directory, or an adapter saved elsewhere
        method_type = "peft" if (tuned_dir / "adapter_config.json").exists() else "full"
    return _module(method_type).Method.load(task, tuned_dir, Path(base_dir), tokenizer, trust_remote_code)

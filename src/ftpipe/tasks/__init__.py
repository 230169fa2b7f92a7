"""Task plug-ins. A task type names a module here holding a `Config` schema and a `Task` class;
the generic stages dispatch on `task.type` and never test for a particular task."""

from __future__ import annotations

import importlib

from ftpipe.errors import ConfigError

TASK_TYPES = {
    "classification": "ftpipe.tasks.classification",
    "summarization": "ftpipe.tasks.summarization",
    "qa": "ftpipe.tasks.qa",
}


def _module(task_type: str):
    if task_type not in TASK_TYPES:
        raise ConfigError("task.type", f"unknown task type '{task_type}' (known: {', '.join(sorted(TASK_TYPES))})")
    return importlib.import_module(TASK_TYPES[task_type])


def task_schema(raw_task: dict):
    """The dataclass that validates a `task` params section."""
    return _module((raw_task or {}).get("type", "<missing>")).Config


def head_keys() -> tuple[str, ...]:
    """Weight names of the heads any task adds to a base (see Task.head_keys)."""
    return tuple(key for name in TASK_TYPES for key in _module(name).Task.head_keys)


def get_task(cfg):
    """The plug-in instance for a validated `task` section."""
    return _module(cfg.type).Task(cfg)

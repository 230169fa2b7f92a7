"""Task plug-ins. A task type is a package here holding a `Config` schema and a `Task` class;
the generic stages dispatch on `task.type` and never test for a particular task. Adding the
package registers it: there is no list to edit."""

from __future__ import annotations

import importlib
import pkgutil

from ftpipe.core.errors import ConfigError

TASK_TYPES = {m.name: f"{__name__}.{m.name}" for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name) if m.ispkg}


def plugin_module(task_type: str):
    """The plug-in package of a task type (its Config, Task, PLOTS and SYNTHETIC)."""
    if task_type not in TASK_TYPES:
        raise ConfigError("task.type", f"unknown task type '{task_type}' (known: {', '.join(sorted(TASK_TYPES))})")
    return importlib.import_module(TASK_TYPES[task_type])


def fitting(needs) -> list[str]:
    """The task types that offer every capability in `needs` (a method's), in name order."""
    return [name for name in TASK_TYPES if set(needs) <= plugin_module(name).Task.capabilities]


def task_schema(raw_task: dict):
    """The dataclass that validates a `task` params section."""
    return plugin_module((raw_task or {}).get("type", "<missing>")).Config


def get_task(cfg):
    """The plug-in instance for a validated `task` section."""
    return plugin_module(cfg.type).Task(cfg)

"""One run at a time in a workspace: composing params.yaml is refused while DVC runs a pipeline here.

`dvc exp run` recomposes params.yaml before it takes DVC's repository lock for good, and DVC lets go of
that lock while a stage's command runs; so a second `dvc exp run` started during the first one's
training rewrites the params the first one records in its dvc.lock, and then fails on the lock, losing
the first experiment. Hydra composes through ftpipe's resolvers (src/hydra_plugins) before anything is
written, so the check lives there and reads only what DVC itself records about a running command:
the workspace experiment's process file and the stage locks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftpipe.core.errors import FtpipeError, shown

RUN_DIR = Path(".dvc/tmp/exps/run/workspace")  # DVC's record of `dvc exp run` in the workspace (WorkspaceQueue)
STAGE_LOCKS = Path(".dvc/tmp/rwlock")  # the dependencies and outputs of the stage DVC is running, by PID


class WorkspaceBusy(FtpipeError):
    """Another DVC run is using this workspace."""


def dvc_root(start: Path | None = None) -> Path | None:
    """The folder holding `.dvc`, from `start` (the working directory) up."""
    here = (start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if (folder / ".dvc").is_dir()), None)


def _alive(pid: int) -> bool:
    if pid <= 0 or pid in (os.getpid(), os.getppid()):  # this composition's own DVC process is not "another run"
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive all the same
        pass
    return True


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def running_experiment(root: Path) -> tuple[str, int] | None:
    """The name and PID of a `dvc exp run` still running in the workspace at `root`, if any."""
    proc = _read_json(root / RUN_DIR / "workspace.json")
    pid = proc.get("pid") if isinstance(proc, dict) else None
    if not isinstance(pid, int) or not _alive(pid):
        return None  # none, or a record a killed run left behind
    info = _read_json(root / RUN_DIR / "workspace.run")
    return (str(info.get("name")) if isinstance(info, dict) and info.get("name") else "unnamed"), pid


def running_stage(root: Path) -> int | None:
    """The PID of a live DVC process that holds a stage lock in this workspace (`dvc repro` mid-stage), if any."""
    locks = _read_json(root / STAGE_LOCKS)
    if not isinstance(locks, dict):
        return None
    holders = [entry for entries in (locks.get("read") or {}).values() for entry in entries]
    holders += list((locks.get("write") or {}).values())
    pids = {entry.get("pid") for entry in holders if isinstance(entry, dict)}
    return next((pid for pid in sorted(p for p in pids if isinstance(p, int)) if _alive(pid)), None)


def refuse_if_busy(root: Path | None = None) -> None:
    """WorkspaceBusy, naming the running experiment or process, if params.yaml must not be rewritten now."""
    root = root or dvc_root()
    if root is None:
        return
    if running := running_experiment(root):
        name, pid = running
        raise WorkspaceBusy(f"experiment '{shown(name)}' is running in this workspace (PID {pid}): params.yaml is "
                            f"not recomposed until it ends; run this again after it (see `dvc exp show`), or in "
                            f"another clone")
    if (pid := running_stage(root)) is not None:
        raise WorkspaceBusy(f"a DVC command is running a stage in this workspace (PID {pid}): params.yaml is not "
                            f"recomposed until it ends; run this again after it")

"""Resume: a run's fingerprint, its latest complete checkpoint, the checkpoint files that cannot be read or
written, and the DVCLive history each checkpoint carries.

Checkpoints live in a folder DVC never deletes. Beside them, fingerprint.json holds a hash of
everything the run depends on (the params sections train reads, the training data, the base
model), so checkpoints left by a run with other params or data are discarded, not resumed.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import pickle
import shutil
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from ftpipe.core.errors import DataError, FtpipeError, shown
from ftpipe.core.records import CheckpointStamp

log = logging.getLogger(__name__)

FINGERPRINT = CheckpointStamp.FILENAME
COMPLETE = "ftpipe_complete"  # written into a checkpoint after the Trainer has saved all of it


def run_fingerprint(params, data_dir: Path, base_dir: Path) -> str:
    sections = {name: dataclasses.asdict(getattr(params, name)) for name in ("task", "model", "method", "train")}
    digest = hashlib.sha256(json.dumps(sections, sort_keys=True, default=str).encode())
    for root in (Path(data_dir) / "train", Path(base_dir)):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            size = path.stat().st_size
            digest.update(f"{path.relative_to(root)} {size}".encode())
            # Reading gigabytes of base weights on every start would be slow; the base model is
            # already pinned by params.model, so large files count by name and size.
            if size <= 64 << 20:
                digest.update(path.read_bytes())
    return digest.hexdigest()


CHECKPOINTS_ENV = "FTPIPE_CHECKPOINTS"


def checkpoint_location(default: Path, fingerprint: str, check: bool = True) -> Path:
    """Where this run keeps its checkpoints: the stage's own folder (checkpoints/train), or, with
    $FTPIPE_CHECKPOINTS set, a folder per run under it (its fingerprint's first 16 hex digits) on storage
    that outlives the machine (a bucket mount, a shared disk): a restarted job on a fresh machine resumes
    from there, and runs of other params or data sharing the storage never touch each other's.

    A machine's setting, not a param: where checkpoints live changes no result, so it is in no
    fingerprint and reruns no stage. Not a writable folder: one line, before any work (`check`: the main
    process; the others only read the path, as only the main process writes)."""
    root = os.environ.get(CHECKPOINTS_ENV)
    if not root:
        return Path(default)
    folder = Path(root) / fingerprint[:16]
    if not check:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise FtpipeError(f"{CHECKPOINTS_ENV}={shown(root, 200)}: not a writable folder ({err.strerror or type(err).__name__}): "
                          f"point it at one, or unset it to keep checkpoints in {default}") from None
    return folder


def find_checkpoint(checkpoint_dir: Path, fingerprint: str, cleanup: bool = True) -> Path | None:
    """The latest complete checkpoint of a run with this fingerprint.

    With `cleanup` (the main process only), stale checkpoints are removed and the fingerprint written.
    """
    try:
        stamp = CheckpointStamp.load(checkpoint_dir, missing_ok=True)
    except DataError:  # cut short by a kill or edited: whose checkpoints these are is unknown, so none is resumed
        stamp = None
    same_run = stamp is not None and stamp.fingerprint == fingerprint
    if same_run:
        done = [p for p in checkpoint_dir.glob("checkpoint-*") if (p / COMPLETE).exists()]
        if done:
            latest = max(done, key=lambda p: int(p.name.split("-")[1]))
            log.info("resuming from %s (step %s)", latest, latest.name.split("-")[1])
            return latest
    if not cleanup:
        return None
    if not same_run and checkpoint_dir.exists() and any(checkpoint_dir.iterdir()):
        log.info("ignoring checkpoints in %s: they are from other params or data", checkpoint_dir)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True)
    CheckpointStamp(fingerprint).save(checkpoint_dir)
    return None


@contextmanager
def checkpoint_io(checkpoint_dir: Path, resume_from: Path | None):
    """A checkpoint that cannot be read or written, as one line naming it and what to do, not a traceback
    from inside the Trainer.

    Reading, on resume: a damaged file, a pickle where safetensors should be, a pickle that is not plain
    tensors (weights_only refuses it: it could run code). Writing: a full disk, which safetensors
    ("os error 28") and torch's zip writer ("unexpected pos") report in their own words; the incomplete
    checkpoint has no completion mark, so the rerun resumes from the one before it.
    """
    from safetensors import SafetensorError

    try:
        yield
    except (pickle.UnpicklingError, RuntimeError, OSError, SafetensorError) as err:
        text = str(err)
        if getattr(err, "errno", None) == errno.ENOSPC or "os error 28" in text or "unexpected pos" in text:
            free = shutil.disk_usage(checkpoint_dir).free >> 20
            raise FtpipeError(f"{checkpoint_dir}: a checkpoint could not be written ({free} MiB left on its disk): free "
                              "space and rerun; it resumes from the last complete checkpoint") from None
        reading = isinstance(err, (pickle.UnpicklingError, SafetensorError)) or "PytorchStreamReader" in text
        if resume_from is None or not reading:
            raise  # not resuming, or not a file failing to load: a bug, with its traceback
        raise FtpipeError(f"{resume_from}: cannot resume from it: one of its files does not load ({type(err).__name__}: "
                          f"{shown(text, 60)}); discard it with `rm -r {resume_from}` and rerun") from None


def clear_checkpoints(checkpoint_dir: Path) -> None:
    """After success only the fingerprint stays: a forced rerun starts over, it does not resume."""
    for path in checkpoint_dir.iterdir():
        if path.name != FINGERPRINT:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class LiveLogger(TrainerCallback):
    """Trainer logs into DVCLive at the Trainer's global step; a copy of the log goes into each checkpoint."""

    # Timings differ run to run; they stay in the run record (runs/train), out of the metrics `dvc metrics diff` compares.
    NOISY = ("_runtime", "_per_second", "total_flos")

    def __init__(self, live, live_dir: Path):
        self.live, self.live_dir = live, live_dir

    def on_log(self, args, state, control, logs=None, **kwargs):
        from dvclive.utils import standardize_metric_name

        self.live.step = state.global_step
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and not key.endswith(self.NOISY):
                self.live.log_metric(standardize_metric_name(key, "dvclive.huggingface"), value)
        self.live.next_step()

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        shutil.copytree(self.live_dir, checkpoint / "live", dirs_exist_ok=True)
        (checkpoint / COMPLETE).write_text("")

"""Provenance: the library versions a tuned model records (TrainRecord), and the circumstances of its run
(RunRecord: device, durations, git and DVC state), which vary with identical inputs and so stay out of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import torch

from ftpipe.core.records import RunRecord

DEFINES_RUN = ("src", "stages", "conf", "dvc.yaml", "params.yaml", "pyproject.toml", "requirements")
# Every library whose version can change a result: the model and its numerics, data reading, the
# validation split (scikit-learn), tokenization, scoring, quantization, the stored weights.
RESULT_LIBRARIES = ("ftpipe", "torch", "transformers", "tokenizers", "safetensors", "datasets", "pyarrow", "peft",
                    "accelerate", "bitsandbytes", "scikit-learn", "evaluate", "rouge-score", "numpy", "dvc", "dvclive")


def library_versions() -> dict:
    """Python's and every result-changing library's version: the train record keeps them (the model's hash
    changes with them, as its numbers may)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in RESULT_LIBRARIES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def run_record(metrics: dict, peak_rss_mb: float, resumed_from: Path | None) -> RunRecord:
    """What this run was, beyond its inputs: how long it took and on what, and the git and DVC state."""
    import platform

    return RunRecord(
        train_runtime=metrics.get("train_runtime", 0.0), train_samples_per_second=metrics.get("train_samples_per_second", 0.0),
        train_steps_per_second=metrics.get("train_steps_per_second", 0.0), peak_rss_mb=peak_rss_mb,
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        git_commit=_git("rev-parse", "HEAD"),
        # Uncommitted changes to what defines the run; dvc.lock and outputs change as the pipeline runs.
        git_dirty=bool(_git("status", "--porcelain", "--untracked-files=no", "--", *DEFINES_RUN)),
        # Set by `dvc exp run`; absent under `dvc repro`. Only these names are read: never the whole environment.
        dvc_exp_name=os.environ.get("DVC_EXP_NAME"), dvc_exp_baseline=os.environ.get("DVC_EXP_BASELINE_REV"),
        resumed_from_step=int(resumed_from.name.split("-")[1]) if resumed_from else None, machine=machine())


# CPU features that change which matmul kernels run, and so the last bits of a result.
MATMUL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")


def machine() -> dict:
    """The hardware a run's numbers came from: CPU model and matmul flags, torch threads, the GPU if any."""
    info: dict = {"torch_threads": torch.get_num_threads(),
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux: the platform's word for it
        import platform

        return {**info, "cpu": platform.processor() or None}
    fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in lines if ":" in line)}
    flags = set(fields.get("flags", "").split())
    return {**info, "cpu": fields.get("model name") or None,
            "cpu_flags": [flag for flag in MATMUL_FLAGS if flag in flags]}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None

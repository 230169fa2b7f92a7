"""Shared fixtures: composed params, and throwaway copies of the repository to run DVC in."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# What a pipeline run needs from the repository; outputs, caches and the venv stay behind.
PROJECT_FILES = ["conf", "stages", "src", "data/inputs", "dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run(cmd: list[str] | str, cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command with the test's Python first on PATH; fail with its output if it fails."""
    full_env = {**os.environ, **OFFLINE, **(env or {})}
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env['PATH']}"
    result = subprocess.run(cmd, cwd=cwd, env=full_env, text=True, capture_output=True, shell=isinstance(cmd, str))
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def make_repo(dest: Path, experiment: str = "test_tiny", overrides: list[str] | None = None) -> Path:
    """A git + DVC repository at `dest` holding the project, composed for `experiment`.

    The copy's conf/config.yaml defaults to `experiment`, so `dvc exp run -S key=value` there
    recomposes around it, as it does around quickstart in the real repository.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    config = dest / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("experiment: quickstart", f"experiment: {experiment}"))
    run("git init -q && git config user.email t@t && git config user.name t", dest)
    run("dvc init -q", dest)
    shutil.copy2(REPO / ".dvc" / "config", dest / ".dvc" / "config")
    write_params(dest, overrides)
    run("git add -A && git commit -qm init", dest)
    return dest


def write_params(repo: Path, overrides: list[str] | None = None) -> dict:
    from ftpipe.params import compose

    cwd = os.getcwd()
    os.chdir(repo)
    try:
        params = compose(overrides)
    finally:
        os.chdir(cwd)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """The tiny experiment reproduced once per session: a repo with every stage's outputs."""
    repo = make_repo(tmp_path_factory.mktemp("tiny") / "repo")
    run(["dvc", "repro"], repo)
    run("git add -A && git commit -qm repro", repo)
    return repo


@pytest.fixture(scope="session")
def dialogsum_pipeline(tmp_path_factory) -> Path:
    """The tiny LoRA summarization experiment reproduced once per session, export merging the adapter."""
    repo = make_repo(tmp_path_factory.mktemp("dialogsum") / "repo", "test_tiny_dialogsum",
                     # A small adapter, as LoRA is meant to be (a few % of a 2-layer model); set here, not in the
                     # experiment, whose other methods (prompt tuning, ...) take no rank.
                     ["export.merge=true", "method.peft.r=8", "method.peft.lora_alpha=16"])
    shutil.copytree(REPO / "tests" / "fixtures" / "dialogsum", repo / "tests" / "fixtures" / "dialogsum")
    run(["dvc", "repro"], repo)
    return repo


@pytest.fixture(scope="session")
def composed() -> dict:
    """The default composition of conf/, from the real repository."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        from ftpipe.params import compose

        return compose()
    finally:
        os.chdir(cwd)


def kill_at_first_checkpoint(repo: Path, cmd: list[str]) -> Path:
    """Run `cmd` (a `dvc repro`) in its own process group and SIGKILL the whole group, like a preempted
    machine, as soon as one checkpoint is complete. Returns that checkpoint."""
    env = {**os.environ, **OFFLINE, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(cmd, cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while not (done := sorted((repo / "checkpoints/train").glob("checkpoint-*/ftpipe_complete"))):
            assert proc.poll() is None, "the run ended before its first checkpoint: give it more steps"
            assert time.time() < deadline, "no checkpoint within 5 minutes"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed: give it more steps"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return done[0].parent


# --- durations file -------------------------------------------------------------------------------
# `python -m pytest --durations-file tests/durations.txt` writes every test's time (setup + call +
# teardown), slowest first, with the total: the record of the last full local run is committed.
def pytest_addoption(parser):
    parser.addoption("--durations-file", default=None, help="write every test's duration here, slowest first")


_DURATIONS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    _DURATIONS[report.nodeid] = _DURATIONS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--durations-file")
    if not path or not _DURATIONS:
        return
    rows = sorted(_DURATIONS.items(), key=lambda kv: -kv[1])
    total = sum(_DURATIONS.values())
    machine = f"{os.cpu_count()} CPUs"
    try:
        machine += ", " + next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"# {len(rows)} tests, {total:.0f} s in all (exit status {int(exitstatus)}), {time.strftime('%Y-%m-%d')}, {machine}",
             "# python -m pytest --durations-file tests/durations.txt", *(f"{seconds:8.2f}s  {node}" for node, seconds in rows)]
    Path(path).write_text("\n".join(lines) + "\n")

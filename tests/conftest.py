"""Shared fixtures: composed params, and throwaway copies of the repository to run DVC in."""

from __future__ import annotations

import hashlib
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
PROJECT_FILES = ["conf", "stages", "src", "data/inputs", "dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml",
                 "tests/fixtures",  # the small files the tiny experiments read (52 KB)
                 "scripts"]  # the runners' scripts, which run in the repository they serve
CORPUS = REPO / "tests" / "bad_inputs"  # bad input of every kind, per task type
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
os.environ.update(OFFLINE)  # this process too (stages run in it by run_stage): before any Hub library is imported
# pytest-xdist's workers share the cores: each worker, and every process it starts, gets its share of
# torch's threads, not all of them (OpenMP threads spinning on an oversubscribed core waste it).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def run(cmd: list[str] | str, cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command with the test's Python first on PATH; fail with its output if it fails."""
    full_env = {**os.environ, **OFFLINE, **(env or {})}
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env['PATH']}"
    result = subprocess.run(cmd, cwd=cwd, env=full_env, text=True, capture_output=True, shell=isinstance(cmd, str))
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def paths_touched_by_commits(subject_start: str) -> list[str]:
    """Every path the commits whose subject starts with `subject_start` touched (the plug-in contract's
    history check); the test is skipped where the checkout has no git history."""
    log = subprocess.run(["git", "log", "--format=%H", "--grep", f"^{subject_start}"], cwd=REPO, text=True, capture_output=True)
    commits = log.stdout.split()
    if log.returncode or not commits:
        pytest.skip("no git history here")
    return subprocess.run(["git", "show", "--name-only", "--format=", *commits], cwd=REPO, text=True, capture_output=True).stdout.split()


def exp_show(repo: Path, *options: str) -> list[str]:
    """`dvc exp show` as a 200-column terminal shows it: no line wider."""
    lines = run(["dvc", "exp", "show", "--no-pager", *options], repo, env={"COLUMNS": "200"}).stdout.splitlines()
    assert lines and max(map(len, lines)) <= 200, "\n".join(lines)
    return lines


def digest(paths: list[Path]) -> dict[str, str]:
    """A hash of every file under `paths`: equal digests mean untouched outputs."""
    out = {}
    for root in paths:
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                out[str(path)] = hashlib.md5(path.read_bytes()).hexdigest()
    return out


def assert_one_line_error(result, *expected: str) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def train_record(**fields) -> dict:
    """A complete train record (ftpipe_train.json, ftpipe.core.records.TrainRecord) for a test that fabricates a
    tuned model; `fields` replace the defaults."""
    return {"method": {"name": "full", "type": "full"}, "train": {}, "base_model": {}, "precision": "fp32", "processes": 1,
            "effective_batch": 8, "trainable_params": 1, "total_params": 1, "trainable_fraction": 1.0, **fields}


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


# --- reproduced repositories -------------------------------------------------------------------------
# Each tiny experiment is reproduced once per test run (once across pytest-xdist's workers too: the
# first worker to need it builds it under a file lock, the others wait) and every test that needs a
# reproduced repository gets its own copy, repo and DVC cache, so tests never see each other's changes
# and no test pays for `dvc repro` from download_data unless that is what it tests.
QA_FIXTURE = "tests/fixtures/qa/squad_custom.json"
# The overrides each tiny experiment (conf/experiment/test_tiny*.yaml) is reproduced with; any other
# test_tiny* experiment is reproduced as it is.
BUILDS = {
    "test_tiny": (),
    # A small adapter, as LoRA is meant to be (a few % of a 2-layer model); set here, not in the
    # experiment, whose other methods (prompt tuning, ...) take no rank. Export merges the adapter.
    "test_tiny_dialogsum": ("export.merge=true", "method.peft.r=8", "method.peft.lora_alpha=16"),
    # Evaluated on the training file itself: the tiny model can memorise it, so tuned must beat base.
    "test_tiny_qa": ("data.eval_from_train=0", f"+data.files.eval=[{QA_FIXTURE}]"),
    "test_tiny_ner": (),
}
TINY_EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("test_tiny*.yaml"))


def _shared_dir(tmp_path_factory) -> Path:
    """A folder every worker of this test run sees: the run's own base folder under xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _build(experiment: str, repo: Path) -> None:
    make_repo(repo, experiment, list(BUILDS.get(experiment, ())))
    run(["dvc", "repro"], repo)
    run("git add -A && git commit -qm repro", repo)


# The fixtures that hand out copies, and which build each copies. A test that calls `reproduced` itself
# names the build in a parameter called `experiment`. The builds the session's tests need are known at
# collection: a worker waiting for one that another worker is building builds another one meanwhile.
PIPELINE_FIXTURES = {"tiny_pipeline": "test_tiny", "dialogsum_pipeline": "test_tiny_dialogsum",
                     "qa_pipeline": "test_tiny_qa", "ner_pipeline": "test_tiny_ner", "chat_pipeline": "test_tiny_chat"}
_NEEDED: list[str] = []


def pytest_collection_finish(session):
    needed = set()
    for item in session.items:
        needed |= {build for fixture, build in PIPELINE_FIXTURES.items() if fixture in item.fixturenames}
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "reproduced" in item.fixturenames and "experiment" in params:
            needed.add(params["experiment"])
    _NEEDED[:] = sorted(needed)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """reproduced(experiment, dest): a copy at `dest` of the tiny experiment's repository, reproduced and
    committed. Without `dest`, the shared build itself, for tests that only read it."""
    from filelock import FileLock, Timeout

    shared = _shared_dir(tmp_path_factory) / "reproduced"
    shared.mkdir(exist_ok=True)

    def build_if_free(name: str) -> bool:
        """Build `name` unless it is built, failed, or being built by another worker; False if another has it."""
        lock = FileLock(str(shared / f"{name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        try:
            if not (shared / name / "done").exists() and not (shared / name / "failed").exists():
                shutil.rmtree(shared / name, ignore_errors=True)
                try:
                    _build(name, shared / name / "repo")
                except BaseException as err:  # said once, to every test that needs it, not retried by each
                    (shared / name / "failed").write_text(f"building {name} failed: {err}")
                    raise
                (shared / name / "done").touch()
        finally:
            lock.release()
        return True

    def ensure(name: str) -> Path:
        while not (shared / name / "done").exists():
            if (shared / name / "failed").exists():
                raise AssertionError((shared / name / "failed").read_text())
            if build_if_free(name):
                continue
            others = [n for n in _NEEDED if n != name and not (shared / n / "done").exists() and not (shared / n / "failed").exists()]
            try:
                if not any(build_if_free(n) for n in others):
                    time.sleep(0.5)
            except Exception:
                pass  # that build's failure is reported to the tests that need it
        return shared / name / "repo"

    def copy(name: str, dest: Path | None = None) -> Path:
        canonical = ensure(name)
        if dest is None:
            return canonical
        dest.parent.mkdir(parents=True, exist_ok=True)
        # cp -a keeps the hard links between DVC's cache and the workspace outputs, and mtimes.
        subprocess.run(["cp", "-a", str(canonical), str(dest)], check=True)
        return dest

    return copy


def _copy_of(experiment: str):
    def copy(reproduced, tmp_path) -> Path:
        return reproduced(experiment, tmp_path / "repo")

    copy.__doc__ = f"{experiment}, reproduced and committed: this test's own copy of the repository and DVC cache."
    return copy


# tiny_pipeline, dialogsum_pipeline, qa_pipeline, ner_pipeline, chat_pipeline: one fixture per entry.
for _fixture, _experiment in PIPELINE_FIXTURES.items():
    globals()[_fixture] = pytest.fixture(_copy_of(_experiment), name=_fixture)


def run_stage(cmd: str, repo: Path) -> subprocess.CompletedProcess:
    """`python stages/<x>.py ...` run in this process, in `repo`: what the stage prints and its exit
    status, as a subprocess would give them, without paying Python's and torch's start-up per case."""
    import contextlib
    import io
    import runpy
    import shlex

    python, script, *args = shlex.split(cmd)
    assert python == "python" and script.startswith("stages/"), cmd
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_argv, saved_path, cwd = sys.argv, list(sys.path), os.getcwd()
    sys.argv, sys.path[:0] = [script, *args], [str(repo / "stages")]
    os.chdir(repo)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(cwd)
    return subprocess.CompletedProcess(cmd, code, out.getvalue(), err.getvalue())


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


def kill_at_first_checkpoint(repo: Path, cmd: list[str], checkpoints: Path | None = None, env: dict | None = None) -> Path:
    """Run `cmd` (a `dvc repro`) in its own process group and SIGKILL the whole group, like a preempted
    machine, as soon as one checkpoint is complete under `checkpoints` (default: the repository's
    checkpoints/train). Returns that checkpoint."""
    checkpoints = checkpoints or repo / "checkpoints/train"
    env = {**os.environ, **OFFLINE, **(env or {}), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(cmd, cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while not (done := sorted(checkpoints.glob("**/checkpoint-*/ftpipe_complete"))):
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
_STARTED = time.time()


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
    workers = session.config.getoption("numprocesses", None) if session.config.pluginmanager.hasplugin("xdist") else None
    lines = [f"# {len(rows)} tests, {total:.0f} s of test time, {time.time() - _STARTED:.0f} s wall with {workers or 1} worker(s) "
             f"(exit status {int(exitstatus)}), {time.strftime('%Y-%m-%d')}, {machine}",
             "# python -m pytest --durations-file tests/durations.txt", *(f"{seconds:8.2f}s  {node}" for node, seconds in rows)]
    Path(path).write_text("\n".join(lines) + "\n")

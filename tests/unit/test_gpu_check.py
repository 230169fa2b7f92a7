"""scripts/gpu_check.sh without a GPU: a check without its carry stops in one line; the carry's wheels are
checked (tags, budget, what the machine has); each step runs under its own cap, and a failed one is
recorded while the next runs. The real fetch and dry run: tests/pipeline/test_gpu_check_dry_run.py."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIB = 2**20


@pytest.fixture
def gpu_steps(monkeypatch):
    """scripts/gpu_steps.py, imported as scripts/gpu_check.py imports it: from its folder, beside gpu_carry.py."""
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return importlib.import_module("gpu_steps")


def script(*args: str, carry: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GPU_CHECK_CARRY=str(carry), OUT=str(out), PYTHON=sys.executable)
    return subprocess.run(["bash", "scripts/gpu_check.sh", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def make_carry(root: Path, files: dict[str, int]) -> Path:
    """A carry as --fetch writes it, with files of the given sizes (sparse: no disk used)."""
    carry = root / "carry"
    for rel, size in files.items():
        (carry / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(carry / rel, "wb") as fh:
            fh.truncate(size)
    manifest = {"skipped": [], "missing_data": [], "files": {rel: {"bytes": size, "sha256": "0" * 64} for rel, size in files.items()}}
    (carry / "manifest.json").write_text(json.dumps(manifest))
    return carry


def test_check_without_its_carry_stops_in_one_line_naming_the_fetch(tmp_path):
    started = time.perf_counter()
    result = script(carry=tmp_path / "absent", out=tmp_path / "out")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "scripts/gpu_check.sh --fetch" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()  # nothing ran: no install, no step, no record
    assert time.perf_counter() - started < 15


@pytest.mark.parametrize("damage", ["a listed wheel is missing", "manifest is not JSON"])
def test_a_damaged_carry_stops_in_one_line_without_echoing_it(tmp_path, damage):
    carry = make_carry(tmp_path, {"wheels/dvc-3.67.1-py3-none-any.whl": 100})
    if damage == "a listed wheel is missing":
        (carry / "wheels/dvc-3.67.1-py3-none-any.whl").unlink()
    else:
        (carry / "manifest.json").write_text('{"files": SECRET-TOKEN-1234')
    result = script(carry=carry, out=tmp_path / "out")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "scripts/gpu_check.sh --fetch" in lines[0], result.stderr
    assert "SECRET" not in result.stderr
    assert not (tmp_path / "out").exists()


GOOD = {"wheels/dvc-3.67.1-py3-none-any.whl": 1000, "wheels/pygit2-1.21.0-cp312-cp312-manylinux_2_28_x86_64.whl": 1000,
        "wheels/cryptography-50.0.2-cp311-abi3-manylinux_2_28_x86_64.whl": 1000, "minilm/config.json": 10}


@pytest.mark.parametrize("extra, problem", [
    ({}, None),
    ({"wheels/orjson-3.13.0-cp311-cp311-manylinux_2_17_x86_64.whl": 10}, "do not fit CPython 3.12"),
    ({"wheels/orjson-3.13.0-cp312-cp312-macosx_11_0_arm64.whl": 10}, "do not fit CPython 3.12"),
    ({"wheels/torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl": 10}, "the GPU machine has torch already"),
    ({"wheels/dvc-3.60.0-py3-none-any.whl": 10}, "two versions stop the install"),
    ({"wheels/bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl": 41 * MIB}, "over the 40 MiB budget"),
    ({"minilm/model.bf16.safetensors.xz": 63 * MIB}, "over the 64 MiB that travels"),
])
def test_verify_refuses_wheels_that_would_fail_on_the_gpu_machine(tmp_path, extra, problem):
    carry = make_carry(tmp_path, GOOD | extra)
    result = subprocess.run([sys.executable, "scripts/gpu_check.py", "verify", str(carry)], cwd=REPO, capture_output=True, text=True)
    if problem is None:
        assert result.returncode == 0, result.stderr
        assert "3 wheels" in result.stdout
    else:
        assert result.returncode != 0 and problem in result.stderr, result.stderr


def test_a_step_past_its_cap_is_ended_with_everything_it_started(tmp_path, gpu_steps):
    runner = gpu_steps.Runner(tmp_path, budget=60)
    pidfile = tmp_path / "child.pid"
    started = time.perf_counter()
    # a grandchild that would outlive a plain kill of the step's own process
    code = runner.call(["bash", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], tmp_path, dict(os.environ), cap=2)
    assert code == "timeout" and time.perf_counter() - started < 15
    child = int(pidfile.read_text())
    for _ in range(50):  # the group got SIGTERM; give the kernel a moment to reap
        if not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the step's child {child} outlived the step's cap")


def test_a_terminated_check_ends_the_running_step_too(tmp_path):
    """The device tool ends a command at its limit with SIGTERM: the step's processes must not run on."""
    pidfile = tmp_path / "child.pid"
    driver = (f"import os, signal, sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); import gpu_steps\n"
              "signal.signal(signal.SIGTERM, lambda *_: sys.exit('terminated'))  # as gpu_steps.run sets it\n"
              f"runner = gpu_steps.Runner(gpu_steps.Path({str(tmp_path)!r}), budget=60)\n"
              f"runner.call(['bash', '-c', 'sleep 60 & echo $! > {pidfile}; wait'], gpu_steps.Path({str(tmp_path)!r}), dict(os.environ), cap=50)")
    check = subprocess.Popen([sys.executable, "-c", driver])
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    check.terminate()
    assert check.wait(timeout=30) != 0
    child = int(pidfile.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the step's child {child} outlived the terminated check")


def test_a_failed_step_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch, gpu_steps):
    monkeypatch.chdir(REPO)  # steps copy the project from the repository root, as the script runs them
    work, out = tmp_path / "work", tmp_path / "out"
    env = dict(os.environ, PATH=f"{gpu_steps.python_shim(work / 'bin')}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(work / "site"))
    out.mkdir()
    params_before = (REPO / "params.yaml").read_bytes()
    runner = gpu_steps.Runner(out, budget=300)
    manifest = {"missing_data": []}
    python = "python"  # the shim's: what dvc.yaml's commands find on PATH
    gpu_steps.run_step(runner, {"name": "first", "cap": 120, "overrides": [], "commands": [[python, "-c", "raise SystemExit(3)"]]},
                work, env, "rehearse", manifest)
    gpu_steps.run_step(runner, {"name": "second", "cap": 120, "overrides": ["train.epochs=1"], "commands": [[python, "-c", "pass"]]},
                work, env, "rehearse", manifest)
    runner.deadline = time.monotonic() + 5  # under the 30 s a step needs to be started
    gpu_steps.run_step(runner, {"name": "third", "cap": 120, "overrides": [], "commands": [[python, "-c", "pass"]]},
                work, env, "rehearse", manifest)
    steps = json.loads((out / "gpu_check.json").read_text())["steps"]
    assert steps["first"]["status"] == "failed" and steps["first"]["exit"] == 3
    assert steps["second"]["status"] == "ok" and "train.epochs=1" in steps["second"]["commands"][0]
    assert "epochs: 1" in (work / "second" / "params.yaml").read_text()  # composed in the step's own copy
    assert steps["third"] == steps["third"] | {"status": "skipped", "why": "out of time (--budget)"}
    assert (REPO / "params.yaml").read_bytes() == params_before  # the user's tree is left as it was

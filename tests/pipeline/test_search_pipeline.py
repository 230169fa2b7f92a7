"""ftpipe-search on the tiny classification pipeline: trials as DVC experiments, one pruned from inside training,
a kill mid-trial and a resume, two processes (two checkouts, standing in for two machines) sharing one journal,
then promotion over seeds and reports/search.md. The fewest trials that show each: four."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import OFFLINE, run

pytestmark = pytest.mark.slow

# The grid sampler's seed 5 draws 2e-3 (test_tiny's own rate: finishes), then 5e-2 (worse at the first
# validation: pruned there), then 1e-1 (killed while it trains), leaving 1e-3 for the resumed search.
SEARCH = {"n_trials": 4, "objective": {"metric": "eval_loss", "direction": "minimize"}, "sampler": {"name": "grid", "seed": 5},
          "pruner": {"name": "median", "n_startup_trials": 1}, "seeds": 1,
          "space": {"train.lr": {"choices": [2.0e-3, 5.0e-2, 1.0e-1, 1.0e-3]}, "train.epochs": 2}}


def start(repo: Path, journal: Path, *options: str) -> subprocess.Popen:
    env = {**os.environ, **OFFLINE, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = open(repo.parent / f"{repo.name}-{time.time():.0f}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "ftpipe.tools.search", "--search", "conf/search/ci.yaml", "--study", "ci",
                             "--storage", str(journal), *options], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def trials(journal: Path):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="ci", storage=storage).trials


def group(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getpgid(int(entry)) == pgid:
                out.append(int(entry))
        except ProcessLookupError:
            pass
    return out


def kill_while_training(proc: subprocess.Popen, repo: Path, journal: Path, number: int) -> None:
    """SIGKILL the search's whole process group once trial `number` has started training (a preempted machine).

    The search's `dvc exp run` and its stage are orphaned by the kill; a machine's init reaps them at once,
    but some containers' PID 1 reaps late, and until then DVC's stage lock and ftpipe's workspace check see
    a zombie's PID as a live run. So this process adopts them (PR_SET_CHILD_SUBREAPER) and reaps them."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of this process's descendants come here
    deadline = time.time() + 300
    try:
        while not (journal.exists() and len(trials(journal)) > number and (repo / "checkpoints/train/live").exists()):
            assert proc.poll() is None, f"the search ended before trial {number} trained"
            assert time.time() < deadline, f"trial {number} never started training"
            time.sleep(0.2)
    finally:
        members = group(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in members:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # the search itself, reaped above, or one its parent reaped
                pass
        prctl(36, 0, 0, 0, 0)


def test_a_search_prunes_resumes_after_a_kill_shares_a_journal_and_promotes_beyond_noise(reproduced, tmp_path):
    first, second = (reproduced("test_tiny", tmp_path / name) for name in ("one", "two"))
    for repo in (first, second):
        (repo / "conf/search/ci.yaml").write_text(yaml.safe_dump(SEARCH))
    journal = tmp_path / "ci.journal"

    kill_while_training(start(first, journal, "--no-promote"), first, journal, number=2)
    before = trials(journal)
    assert [t.state.name for t in before] == ["COMPLETE", "PRUNED", "RUNNING"], before
    pruned = before[1]
    assert pruned.user_attrs["steps"] < pruned.user_attrs["max_steps"] and max(pruned.intermediate_values) == pruned.user_attrs["steps"]

    # Resumed in the first checkout while a second one joins: they finish the study between them.
    workers = [start(repo, journal, "--no-promote") for repo in (first, second)]
    assert [w.wait(timeout=600) for w in workers] == [0, 0]
    done = trials(journal)
    interrupted = done[2]
    assert interrupted.state.name == "FAIL" and interrupted.user_attrs["interrupted"]
    counted = [t for t in done if not t.user_attrs.get("interrupted")]
    assert len(counted) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in counted), done
    assert sorted(t.params["train.lr"] for t in counted) == [1.0e-3, 2.0e-3, 5.0e-2, 1.0e-1]  # each point once; the killed one rerun
    names = {repo: set(run(["dvc", "exp", "list", "--name-only"], repo).stdout.split()) for repo in (first, second)}
    assert {"search-ci-0", "search-ci-1"} <= names[first]
    for t in counted:  # every trial an experiment in exactly one checkout: none evaluated twice
        assert sum(t.user_attrs["experiment"] in found for found in names.values()) == 1, (t.number, names)
    assert names[second] & {t.user_attrs["experiment"] for t in counted}, "the second checkout ran no trial"

    # The budget is spent: starting it again runs no trial, and promotes the best over seeds.
    result = run([sys.executable, "-m", "ftpipe.tools.search", "--search", "conf/search/ci.yaml", "--study", "ci",
                  "--storage", str(journal)], first)
    ran = [line.split()[5] for line in result.stdout.splitlines() if line.startswith("$ dvc exp run -n ")]
    assert ran == ["search-ci-default-s42", "search-ci-best-s42"], ran
    report = (first / "reports/search.md").read_text()
    assert "adopt: better by" in report or "not shown better than the default" in report, report
    assert "| 1 | pruned |" in report and f"{pruned.user_attrs['steps']}/{pruned.user_attrs['max_steps']}" in report
    assert "## Parameter importances" in report and (first / "reports/search/history.csv").is_file()

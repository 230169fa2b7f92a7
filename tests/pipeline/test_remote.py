"""The remote-runner workflow: push the downloads to the DVC remote, reproduce in a fresh offline
clone with scripts/remote_run.sh, push the experiment back; and a queued learning-rate sweep."""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from conftest import REPO, exp_show, make_repo, run

pytestmark = pytest.mark.slow
OFFLINE_METRICS = ["metrics/preprocess.json", "metrics/base.json", "metrics/tuned.json", "metrics/compare.json",
                   "dvclive/train/metrics.json"]


def test_fresh_offline_clone_pulls_and_reproduces_identical_metrics(tiny_pipeline):
    # The default remote is ../ftpipe-remote beside the repository: clones side by side share it.
    remote = tiny_pipeline.parent / "ftpipe-remote"
    run(["dvc", "push", "download_data", "download_model"], tiny_pipeline)
    assert any(remote.rglob("*")), "nothing pushed"

    clone = tiny_pipeline.parent / "runner"
    run(["git", "clone", "-q", str(tiny_pipeline), str(clone)], tiny_pipeline.parent)
    assert not (clone / "data/raw").exists() and not (clone / "models").exists()
    # Offline (conftest's run sets HF_*_OFFLINE); a network call would fail, not hang.
    out = run(["bash", str(REPO / "scripts/remote_run.sh")], clone,
              env={"HF_ENDPOINT": "http://127.0.0.1:9", "GIT_REMOTE": "origin"})
    log = out.stdout + out.stderr
    assert "Running stage 'download_data'" not in log and "Running stage 'download_model'" not in log
    assert "Running stage 'train'" in log  # really recomputed, not pulled
    for name in OFFLINE_METRICS:
        committed = json.loads(run(["git", "show", f"HEAD:{name}"], clone).stdout)
        assert json.loads((clone / name).read_text()) == committed, name

    # The runner pushed its experiment back to the origin: review it there.
    exps = run(["dvc", "exp", "list", "--name-only"], tiny_pipeline).stdout.split()
    assert len(exps) >= 1, exps


def test_laptop_and_runner_round_trip_through_a_bare_git_remote_and_a_dvc_remote(tmp_path):
    """Two clones of one repository: the laptop pushes the inputs; the runner pulls them, runs offline
    on 2 processes (scripts/remote_run.sh) and pushes the experiment; the laptop pulls it and
    `dvc metrics diff` shows the runner's metrics."""
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    laptop = make_repo(tmp_path / "laptop")  # its DVC remote, ../ftpipe-remote, is tmp_path/ftpipe-remote
    run(["git", "remote", "add", "origin", str(origin)], laptop)
    run(["dvc", "repro", "download_data", "download_model"], laptop)  # the connected machine fetches
    run(["dvc", "push", "download_data", "download_model"], laptop)
    run("git add -A && git commit -qm inputs && git push -q origin HEAD:main", laptop)

    runner = tmp_path / "runner"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(runner)], tmp_path)
    out = run(["bash", str(REPO / "scripts/remote_run.sh")], runner,
              env={"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "NPROC_PER_NODE": "2"})
    log = out.stdout + out.stderr
    assert "Running stage 'download_data'" not in log and "Running stage 'download_model'" not in log  # pulled
    assert "launching torchrun --standalone --nproc_per_node=2 stages/train.py" in log
    produced = json.loads((runner / "metrics/tuned.json").read_text())

    exps = run(["dvc", "exp", "list", "origin", "--name-only"], laptop).stdout.split()
    assert len(exps) == 1, exps
    run(["dvc", "exp", "pull", "origin", exps[0]], laptop)
    diff = json.loads(run(["dvc", "metrics", "diff", "HEAD", exps[0], "--json"], laptop).stdout)
    assert diff["metrics/tuned.json"]["accuracy"] == {"old": None, "new": produced["accuracy"]}  # the laptop ran nothing
    assert json.loads(run(["dvc", "params", "diff", "HEAD", exps[0], "--json"], laptop).stdout
                      )["params.yaml"]["train.launcher"]["new"] == "torchrun"
    run(["dvc", "exp", "apply", exps[0]], laptop)  # its outputs came through the DVC remote
    assert (laptop / "models/tuned/model.safetensors").exists()


def test_queued_lr_sweep_lists_three_experiments_with_metrics(tiny_pipeline):
    run(["dvc", "exp", "run", "--queue", "-S", "train.lr=1e-5,2e-5,5e-5"], tiny_pipeline)
    run(["dvc", "queue", "start", "-j", "1"], tiny_pipeline)
    deadline = time.time() + 600
    while True:
        status = run(["dvc", "queue", "status"], tiny_pipeline).stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.time() < deadline, status
        time.sleep(3)
    assert "Failed" not in status, status + run(["dvc", "queue", "logs", status.split()[0]], tiny_pipeline, check=False).stdout

    shown = json.loads(run(["dvc", "exp", "show", "--json"], tiny_pipeline).stdout)
    accuracy_by_lr = {lr: acc for lr, acc in walk_runs(shown) if acc is not None}
    assert {1e-5, 2e-5, 5e-5} <= set(accuracy_by_lr), accuracy_by_lr
    table = run(["dvc", "exp", "show", "--no-pager", "--md"], tiny_pipeline).stdout
    assert "accuracy" in table
    # The tiny experiment's many params (model.tiny.*) and the queued rows (dvc adds State and Executor
    # columns) still leave accuracy and lr in view in 200 columns with --only-changed, as the README says.
    lines = exp_show(tiny_pipeline, "--only-changed")
    assert re.search(r"\baccuracy\b", next(line for line in lines if "Experiment" in line)), "\n".join(lines)
    lr = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())["train"]["lr"]
    accuracy = json.loads((tiny_pipeline / "metrics/tuned.json").read_text())["accuracy"]
    shown = [re.escape(f"{value:.5g}") for value in (accuracy, lr)]  # as dvc rounds them
    assert re.search(rf"{shown[0]} .* {shown[1]} ", next(line for line in lines if "workspace" in line)), "\n".join(lines)


def walk_runs(node):
    """(train.lr, tuned accuracy) of every revision in `dvc exp show --json`, however deeply nested."""
    if isinstance(node, list):
        for item in node:
            yield from walk_runs(item)
    elif isinstance(node, dict):
        data = node.get("data")
        if "rev" in node and isinstance(data, dict):
            params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
            metrics = (data.get("metrics") or {}).get("metrics/tuned.json", {}).get("data", {})
            yield params.get("train", {}).get("lr"), metrics.get("accuracy")
        for value in node.values():
            if isinstance(value, (list, dict)):
                yield from walk_runs(value)


@pytest.mark.parametrize("revision, warns", [("main", True), ("0123456789abcdef0123456789abcdef01234567", False)])
def test_hub_model_download_records_the_commit_it_got(tmp_path, monkeypatch, caplog, revision, warns):
    """A branch name still leaves a record of the exact commit, and a warning that says how to pin it."""
    from types import SimpleNamespace

    import huggingface_hub

    from ftpipe.models.sources import _from_hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "cache" / "snapshots" / commit  # how huggingface_hub lays out a snapshot
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, revision, allow_patterns: str(snapshot))
    _from_hub(SimpleNamespace(path="org/model", revision=revision), tmp_path / "base")
    assert json.loads((tmp_path / "base/ftpipe_source.json").read_text()) == {"repo": "org/model", "revision": revision, "commit": commit}
    assert (f"model.revision={commit}" in caplog.text) == warns

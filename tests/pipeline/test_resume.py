"""Resume: a train stage killed with SIGKILL after a checkpoint resumes on the next `dvc repro`
and ends with exactly the model of an uninterrupted run; stale checkpoints are not resumed.
The train stage alone is run: its outputs decide everything evaluated after it."""

from __future__ import annotations

import json
import re

import pytest

from conftest import kill_at_first_checkpoint, run, write_params
from ftpipe.core.records import RunRecord

pytestmark = pytest.mark.slow
SAVE_STEPS = 20  # the tiny experiment trains 138 steps


def test_sigkill_then_repro_resumes_and_matches_uninterrupted(tiny_pipeline):
    repo = tiny_pipeline  # reproduced: with save_steps changed, train reruns
    write_params(repo, [f"train.save_steps={SAVE_STEPS}"])
    previous = (repo / "models/tuned/model.safetensors").read_bytes()
    kill_at_first_checkpoint(repo, ["dvc", "repro", "train"])
    # The killed run left the previous model as it was, and nothing half-written beside it.
    assert (repo / "models/tuned/model.safetensors").read_bytes() == previous and not list(repo.glob("models/.tuned*"))

    out = run(["dvc", "repro", "train"], repo)
    resumed = re.search(r"resuming from \S+checkpoint-(\d+) \(step (\d+)\)", out.stdout + out.stderr)
    assert resumed, out.stdout[-3000:] + out.stderr[-3000:]
    step = int(resumed.group(2))
    assert step >= SAVE_STEPS and step % SAVE_STEPS == 0
    info = json.loads((repo / "models/tuned/ftpipe_train.json").read_text())
    assert RunRecord.load(repo / "runs/train").resumed_from_step == step
    assert [p.name for p in (repo / "checkpoints/train").iterdir()] == ["fingerprint.json"]  # cleared on success
    resumed_weights = (repo / "models/tuned/model.safetensors").read_bytes()
    resumed_live = (repo / "dvclive/train/metrics.json").read_text()
    resumed_loss = info["train_loss"]

    # The same params, uninterrupted (checkpoints were cleared, so this starts from step 0).
    out = run("dvc repro -f -s train", repo)
    assert "resuming" not in out.stdout + out.stderr
    assert RunRecord.load(repo / "runs/train").resumed_from_step is None
    # Tolerance: none. On CPU a resumed run is bit-identical (RNG states, optimizer, data order restored).
    assert (repo / "models/tuned/model.safetensors").read_bytes() == resumed_weights
    # The whole DVCLive summary, train.loss included: it once averaged only the steps after the resume.
    assert json.loads((repo / "dvclive/train/metrics.json").read_text()) == json.loads(resumed_live)
    assert json.loads((repo / "models/tuned/ftpipe_train.json").read_text())["train_loss"] == resumed_loss


def test_checkpoints_from_other_params_are_not_resumed(tmp_path):
    """Unit level: a fingerprint mismatch clears the folder instead of resuming."""
    from ftpipe.training.resume import FINGERPRINT, find_checkpoint

    ckpt = tmp_path / "checkpoints"
    assert find_checkpoint(ckpt, "aaa") is None  # fresh: writes the fingerprint
    (ckpt / "checkpoint-20").mkdir()
    (ckpt / "checkpoint-20" / "ftpipe_complete").write_text("")
    (ckpt / "checkpoint-40").mkdir()  # killed while saving: no completion marker
    assert find_checkpoint(ckpt, "aaa") == ckpt / "checkpoint-20"
    assert find_checkpoint(ckpt, "bbb") is None  # other params or data: start over
    assert [p.name for p in ckpt.iterdir()] == [FINGERPRINT]
    assert json.loads((ckpt / FINGERPRINT).read_text())["fingerprint"] == "bbb"


@pytest.mark.slow
def test_killed_lora_run_resumes_from_its_checkpoint(dialogsum_pipeline):
    """A PEFT checkpoint (adapter + optimizer + RNG states) resumes to the adapter an uninterrupted run gives."""
    import re

    from conftest import BUILDS, kill_at_first_checkpoint, run, write_params

    repo = dialogsum_pipeline  # reproduced: only train reruns below
    # 40 steps, so a fast machine cannot finish the run between two looks for the first checkpoint.
    write_params(repo, [*BUILDS["test_tiny_dialogsum"], "train.save_steps=4", "train.max_steps=40"])
    checkpoint = kill_at_first_checkpoint(repo, ["dvc", "repro", "train"])
    assert (checkpoint / "adapter_model.safetensors").exists()  # the checkpoint holds the adapter

    out = run(["dvc", "repro", "train"], repo)
    assert re.search(r"resuming from \S+checkpoint-\d+", out.stdout + out.stderr)
    resumed = (repo / "models/tuned/adapter_model.safetensors").read_bytes()
    run("dvc repro -f -s train", repo)
    assert (repo / "models/tuned/adapter_model.safetensors").read_bytes() == resumed


def test_a_preempted_run_resumes_on_a_fresh_clone_from_checkpoints_that_outlived_its_machine(tiny_pipeline, tmp_path):
    """A spot instance: train with checkpoints on storage that outlives it ($FTPIPE_CHECKPOINTS), kill the whole
    machine's process group at the first checkpoint, then a fresh clone on another machine, pointed at the same
    storage, resumes from the last complete checkpoint and ends bit-identical to an uninterrupted run."""
    repo, bucket = tiny_pipeline, tmp_path / "bucket"
    write_params(repo, [f"train.save_steps={SAVE_STEPS}"])
    run("git add -A && git commit -qm save-steps", repo)
    kill_at_first_checkpoint(repo, ["dvc", "repro", "train"], checkpoints=bucket, env={"FTPIPE_CHECKPOINTS": str(bucket)})
    assert not list((repo / "checkpoints").glob("train/checkpoint-*"))  # nothing on the lost machine's disk

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    out = run(["dvc", "repro", "train"], clone, env={"FTPIPE_CHECKPOINTS": str(bucket)})
    resumed = re.search(r"resuming from \S+checkpoint-(\d+) \(step (\d+)\)", out.stdout + out.stderr)
    assert resumed and str(bucket) in out.stdout + out.stderr, out.stdout[-3000:] + out.stderr[-3000:]
    assert RunRecord.load(clone / "runs/train").resumed_from_step == int(resumed.group(2)) >= SAVE_STEPS
    resumed_weights = (clone / "models/tuned/model.safetensors").read_bytes()

    out = run("dvc repro -f -s train", clone)  # uninterrupted, checkpoints in the clone's own folder
    assert "resuming" not in out.stdout + out.stderr
    assert (clone / "models/tuned/model.safetensors").read_bytes() == resumed_weights

"""Scale out for real on CPU with gloo: two processes (torchrun, accelerate, DeepSpeed, FSDP2) match one,
only the main process writes, and the Slurm script trains across two nodes.
(The launcher prefix and strategies as composed: tests/unit/test_distributed.py.)"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run



# --- real runs on CPU (gloo) --------------------------------------------------------------------
# Dropout off and fp32: with them the two runs below compute the same averaged gradient from the
# same 16 examples at every step (the seeded sampler's order is split 8 + 8 across the processes),
# so they differ only by float summation order. The validation fraction leaves 320 training rows,
# a whole number of 16-row steps, so no step is padded with repeated rows on the second process.
# SGD, not AdamW: Adam divides each gradient by its running RMS, so a summation-order difference in a
# near-zero gradient becomes a step of about lr whose sign depends on the CPU's kernels; SGD keeps the
# two runs' weights within lr x that rounding, so their losses agree to float noise at every step.
SAME_MATH = ["-S", "train.validation_fraction=0.2", "-S", "train.precision=fp32", "-S", "train.optim=sgd", "-S", "train.lr=0.05",
             "-S", "+model.tiny.hidden_dropout_prob=0.0", "-S", "+model.tiny.attention_probs_dropout_prob=0.0"]
# Losses are means of ~2.0 over 16 examples: float32 summation-order noise is ~1e-6; 1e-4 leaves room for
# any CPU's kernels.
LOSS_TOL = 1e-4


FSDP_SCRIPT = r"""
import sys, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from transformers import BertConfig, BertForSequenceClassification
dist.init_process_group("gloo")
torch.manual_seed(0)
model = BertForSequenceClassification(BertConfig(vocab_size=800, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                 intermediate_size=64, num_labels=5))
for layer in model.bert.encoder.layer:  # TRANSFORMER_BASED_WRAP: one FSDP unit per block (_no_split_modules)
    fully_shard(layer)
fully_shard(model)
assert all(isinstance(p, DTensor) for p in model.parameters())
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
torch.manual_seed(1 + dist.get_rank())  # each process its own batch, as under a distributed sampler
ids, labels = torch.randint(5, 800, (8, 16)), torch.randint(0, 5, (8,))
losses = []
for _ in range(5):
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward(); opt.step(); opt.zero_grad()
    losses.append(loss.item())
local = sum(p.to_local().numel() for p in model.parameters())
total = sum(p.numel() for p in model.parameters())
print(f"rank {dist.get_rank()} shard {local}/{total} losses {losses[0]:.4f}->{losses[-1]:.4f}", flush=True)
assert local < total and losses[-1] < losses[0]
dist.destroy_process_group()
"""


FAKE_SRUN = """#!/usr/bin/env bash
# srun on one machine: the command once per node of the job, in parallel, each with its SLURM_NODEID.
while [[ $1 == --* ]]; do shift; done
pids=(); for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i "$@" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
for _ in $(seq "$SLURM_NNODES"); do echo localhost; done
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def history(repo: Path) -> dict[int, float]:
    with open(repo / "dvclive/train/plots/metrics/loss.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    steps = [int(r["step"]) for r in rows]
    assert len(steps) == len(set(steps)), f"duplicated steps: two processes logged ({steps})"
    return {int(r["step"]): float(r["loss"]) for r in rows}


def outcome(repo: Path) -> dict:
    return {"history": history(repo), "record": json.loads((repo / "models/tuned/ftpipe_train.json").read_text())}


# The tests of the runs below share them: one pytest-xdist worker runs them all (--dist loadgroup).
TWO_RUNS = pytest.mark.xdist_group("two_runs")


@pytest.fixture(scope="module")
def two_runs(reproduced, tmp_path_factory):
    """The tiny experiment's train stage with 1 process x batch 16, then 2 processes (torchrun) x batch 8,
    from the reproduced tiny repo: the data stages are done, and what is compared is training."""
    repo = reproduced("test_tiny", tmp_path_factory.mktemp("ddp") / "repo")
    run(["dvc", "exp", "run", *SAME_MATH, "-S", "train.batch_size=16", "train"], repo)
    one = outcome(repo)
    out = run(["dvc", "exp", "run", *SAME_MATH, "-S", "train.batch_size=8",
               "-S", "train.launcher=torchrun", "-S", "train.nproc_per_node=2", "train"], repo)
    return repo, one, outcome(repo), out.stdout + out.stderr


@pytest.mark.slow
@TWO_RUNS
def test_two_process_ddp_matches_one_process_with_the_same_effective_batch(two_runs):
    repo, one, two, log = two_runs
    assert "launching torchrun --standalone --nproc_per_node=2 stages/train.py" in log  # the stage started torchrun
    assert (one["record"]["processes"], two["record"]["processes"]) == (1, 2)
    assert one["record"]["effective_batch"] == two["record"]["effective_batch"] == 16
    assert one["history"].keys() == two["history"].keys()
    for step, loss in one["history"].items():
        assert two["history"][step] == pytest.approx(loss, abs=LOSS_TOL), step


@pytest.mark.slow
@TWO_RUNS
def test_only_the_main_process_writes(two_runs):
    repo, _, two, log = two_runs
    # Every process logs through the same stderr; only the main one reaches these lines.
    assert log.count("ftpipe.train: tuned model in models/tuned") == 1, log[-3000:]
    assert log.count("effective batch 16 = 8 per device x 2 processes") == 1
    assert not list(repo.glob("models/.tuned*")) and not list(repo.glob("dvclive/.train*"))  # no stray temporaries
    assert (repo / "models/tuned/model.safetensors").exists()
    metrics = json.loads((repo / "dvclive/train/metrics.json").read_text())
    assert metrics["step"] == max(two["history"])  # one history, ending at the last step


@pytest.mark.slow
@TWO_RUNS
def test_accelerate_launch_runs_the_same_two_processes(two_runs):
    repo, one, _, _ = two_runs
    out = run(["dvc", "exp", "run", *SAME_MATH, "-S", "train.batch_size=8",
               "-S", "train.launcher=accelerate", "-S", "train.nproc_per_node=2", "train"], repo)
    assert "launching accelerate launch --num_processes=2 --num_machines=1" in out.stdout + out.stderr
    launched = outcome(repo)
    assert (launched["record"]["processes"], launched["record"]["effective_batch"]) == (2, 16)
    for step, loss in one["history"].items():
        assert launched["history"][step] == pytest.approx(loss, abs=LOSS_TOL), step


@pytest.mark.slow
@TWO_RUNS
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed is not installed (EXTRAS=test,deepspeed)")
def test_deepspeed_zero3_runs_on_cpu_and_matches(two_runs):
    """ZeRO-3 shards the parameters across the 2 processes (gloo) and gathers them to save models/tuned."""
    repo, one, _, _ = two_runs
    run(["dvc", "exp", "run", *SAME_MATH, "-S", "train.batch_size=8", "-S", "distributed=deepspeed_zero3",
         "-S", "train.launcher=torchrun", "-S", "train.nproc_per_node=2", "train"], repo)
    zero3 = outcome(repo)
    assert zero3["record"]["effective_batch"] == 16
    for step, loss in one["history"].items():
        assert zero3["history"][step] == pytest.approx(loss, abs=LOSS_TOL), step


@pytest.mark.slow
def test_fsdp2_shards_the_tiny_model_on_cpu_with_gloo(tmp_path):
    """torch's FSDP2 itself runs on CPU with gloo: each process holds about half the tiny BERT and it learns.

    Through the Trainer it cannot: accelerate switches to FSDP only from a multi-GPU state, so on CPUs
    distributed=fsdp trains as DDP (ftpipe warns); the FSDP path of the Trainer needs GPUs.
    """
    script = tmp_path / "fsdp_tiny.py"
    script.write_text(FSDP_SCRIPT)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    out = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(script)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    shards = re.findall(r"rank (\d) shard (\d+)/(\d+)", out.stdout)
    assert sorted(r for r, _, _ in shards) == ["0", "1"]
    assert all(int(local) <= int(total) // 2 + 1000 for _, local, total in shards)  # about half each


@pytest.mark.slow
def test_slurm_script_trains_across_two_nodes_and_node_0_pushes(reproduced, tmp_path):
    """scripts/slurm/train.sbatch with two "nodes" on this machine (srun and scontrol faked): node 0
    runs DVC and its train stage's torchrun meets node 1's at the static rendezvous; one process writes,
    and node 0 pushes the experiment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    repo = reproduced("test_tiny", tmp_path / "repo")  # the data stages done: node 0's run starts at train
    run(["git", "remote", "add", "origin", str(origin)], repo)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "VENV": sys.prefix, "SLURM_SUBMIT_DIR": str(repo),
           "SLURM_JOB_ID": "7", "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "node[0-1]", "SLURM_GPUS_ON_NODE": "1",
           "MASTER_PORT": str(free_port())}
    out = run(["bash", str(REPO / "scripts/slurm/train.sbatch"), "-S", "train.epochs=2"], repo, env=env)
    log = out.stdout + out.stderr
    assert f"--node_rank=0 --rdzv_backend=static --rdzv_endpoint=localhost:{env['MASTER_PORT']} stages/train.py" in log
    record = json.loads((repo / "models/tuned/ftpipe_train.json").read_text())
    assert (record["processes"], record["effective_batch"]) == (2, 32)  # 1 process per node x 2 nodes x 16
    assert log.count("ftpipe.train: tuned model in models/tuned") == 1
    history(repo)  # one DVCLive history, no step logged twice
    assert not list(repo.glob(".slurm-*.cmds"))
    assert run(["git", "ls-remote", str(origin), "refs/exps/*"], tmp_path).stdout.strip()  # the experiment, pushed

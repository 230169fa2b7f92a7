"""The train stage's launch command: the one place that turns train.launcher and its sizes into
the torchrun or accelerate flags (used by conf/'s resolver, by validation, by the train stage and by
the Slurm script)."""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
from typing import Optional

from ftpipe.core.errors import check

LAUNCHERS = ("none", "torchrun", "accelerate")
BACKENDS = ("auto", "nccl", "gloo", "mpi", "xccl", "hccl")  # auto: nccl on GPUs, gloo on CPUs
STRATEGIES = ("none", "ddp", "fsdp", "deepspeed")


def launch_prefix(launcher: str, nproc_per_node: int = 1, nnodes: int = 1, node_rank: int = 0,
                  rdzv_endpoint: Optional[str] = None) -> str:
    """What the train stage runs under: `python`, or torchrun / `accelerate launch` and their flags.

    conf/ composes this string into params (the `ftpipe_launch_prefix` resolver in hydra_plugins calls
    this function), so the launch is on record with the rest of `train`; the stage starts the launcher
    itself (`relaunch`), never through a shell. Every token comes from a checked value and none holds
    a space. One node: torchrun --standalone picks a free port. Several: a static rendezvous at node 0's
    rdzv_endpoint, so that global rank 0, the one process that writes outputs, is on node 0.
    """
    check("train.launcher", launcher in LAUNCHERS, f"unknown launcher '{launcher}' (none, torchrun or accelerate)")
    check("train.nproc_per_node", isinstance(nproc_per_node, int) and nproc_per_node >= 1, f"must be >= 1, got {nproc_per_node}")
    check("train.nnodes", isinstance(nnodes, int) and nnodes >= 1, f"must be >= 1, got {nnodes}")
    check("train.node_rank", isinstance(node_rank, int) and 0 <= node_rank < nnodes, f"must be in [0, nnodes={nnodes}), got {node_rank}")
    if launcher == "none":
        check("train.launcher", nproc_per_node == 1 and nnodes == 1, "none runs one process: use torchrun or accelerate for several")
        return "python"
    if nnodes > 1:
        check("train.rdzv_endpoint", bool(re.fullmatch(r"[\w.\-\[\]:]+:\d+", str(rdzv_endpoint or ""))),
               f"host:port of node 0 is required when nnodes > 1, got {rdzv_endpoint}")
    world = nnodes * nproc_per_node
    if launcher == "torchrun":
        if nnodes == 1:
            return f"torchrun --standalone --nproc_per_node={nproc_per_node}"
        return (f"torchrun --nnodes={nnodes} --nproc_per_node={nproc_per_node} --node_rank={node_rank} "
                f"--rdzv_backend=static --rdzv_endpoint={rdzv_endpoint}")
    # Precision and compilation are the Trainer's settings (train.precision, train.torch_compile):
    # saying `no` here only silences accelerate's warnings about unset defaults.
    out = f"accelerate launch --num_processes={world} --num_machines={nnodes} --mixed_precision=no --dynamo_backend=no"
    if world > 1:
        out += " --multi_gpu"  # accelerate's torch.distributed launcher; on a CPU the processes use gloo
    if nnodes > 1:
        host, port = str(rdzv_endpoint).rsplit(":", 1)
        out += f" --machine_rank={node_rank} --main_process_ip={host} --main_process_port={port} --rdzv_backend=static"
    elif world > 1:
        out += " --main_process_port=0"  # a free port, as torchrun --standalone
    return out


def relaunch(cfg) -> None:
    """Run the train stage again under torchrun or `accelerate launch` when train.launcher names one.

    dvc.yaml's command is a plain `python stages/train.py ...`: no params value ever reaches DVC's
    shell. Here the launcher's argv is built from the validated settings and replaces this process
    (os.execvp, no shell). Inside the launcher's processes (LOCAL_RANK is set) this returns at once.
    """
    prefix = launch_prefix(cfg.launcher, cfg.nproc_per_node, cfg.nnodes, cfg.node_rank, cfg.rdzv_endpoint)
    if prefix == "python" or "LOCAL_RANK" in os.environ:
        return
    argv = [*prefix.split(), *sys.argv]
    logging.getLogger(__name__).info("launching %s", shlex.join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)

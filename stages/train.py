"""Stage train: fine-tune the base model with the configured method; log with DVCLive."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import offline  # noqa: F401  (before transformers/datasets: this stage never goes online)
from ftpipe.params import load_params
from ftpipe.core.launch import relaunch
from ftpipe.core.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="data/subset")
    parser.add_argument("--base", type=Path, required=True, help="base model folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the tuned model")
    parser.add_argument("--live", type=Path, required=True, help="DVCLive folder")
    parser.add_argument("--checkpoints", type=Path, required=True, help="Trainer checkpoints (for resume)")
    parser.add_argument("--run-record", type=Path, required=True, help="runs/train: the run's record (durations, device, git state)")
    args = parser.parse_args()
    params = load_params("task", "model", "method", "train")
    relaunch(params.train)  # under torchrun / accelerate launch when train.launcher names one
    from ftpipe.train import train  # after the launch: the launching process needs none of it
    from ftpipe.training.run import process_state

    state = process_state(params.train)  # this process's rank in the launch, made once and passed on
    train(params, state, args.data, args.base, args.out, args.live, args.checkpoints, args.run_record)


if __name__ == "__main__":
    run(main)

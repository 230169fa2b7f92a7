"""Stage evaluate: metrics, predictions and plot data for the base or the tuned model."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import offline  # noqa: F401  (before transformers/datasets: this stage never goes online)
from ftpipe.params import load_params
from ftpipe.evaluate import evaluate
from ftpipe.core.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--which", choices=["base", "tuned"], required=True)
    parser.add_argument("--model", type=Path, required=True, help="the model folder to evaluate")
    parser.add_argument("--base", type=Path, required=True, help="base model folder (fresh head, or under an adapter)")
    parser.add_argument("--data", type=Path, required=True, help="data/subset")
    parser.add_argument("--clean", type=Path, required=True, help="data/clean (the examples' text)")
    parser.add_argument("--metrics", type=Path, required=True, help="the headline metrics (dvc exp show)")
    parser.add_argument("--details", type=Path, help="every metric, per class too")
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    parser.add_argument("--run-record", type=Path, required=True, help="runs/evaluate/<which>: speed and memory")
    args = parser.parse_args()
    params = load_params("task", "evaluate", "model")  # model: only trust_remote_code (dvc.yaml)
    evaluate(params, args.which, args.model, args.base, args.data, args.clean, args.metrics, args.predictions, args.plots,
             args.run_record, args.details)


if __name__ == "__main__":
    run(main)

"""Stage preprocess: validate and normalise the raw records with the task plug-in."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import offline  # noqa: F401  (before transformers/datasets: this stage never goes online)
from ftpipe.params import load_params
from ftpipe.preprocess import preprocess
from ftpipe.core.stage import run
from ftpipe.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, required=True, help="data/raw from download_data")
    parser.add_argument("--out", type=Path, required=True, help="folder for <split>.parquet")
    parser.add_argument("--metrics", type=Path, required=True, help="record counts, kept and dropped")
    args = parser.parse_args()
    params = load_params("task", "data")
    preprocess(get_task(params.task), params.data, args.raw, args.out, args.metrics)


if __name__ == "__main__":
    run(main)

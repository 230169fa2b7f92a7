"""Stage subset: seeded (optionally stratified) train/eval subsets of the tokenized data."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import offline  # noqa: F401  (before transformers/datasets: this stage never goes online)
from ftpipe.params import load_params
from ftpipe.datasets_io import subset
from ftpipe.core.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokenized", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = load_params("subset")
    subset(params.subset, args.tokenized, args.out)


if __name__ == "__main__":
    run(main)

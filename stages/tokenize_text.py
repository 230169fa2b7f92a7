"""Stage tokenize: batched fast tokenization, truncated to task.max_length, unpadded."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import offline  # noqa: F401  (before transformers/datasets: this stage never goes online)
from ftpipe.params import load_params
from ftpipe.datasets_io import tokenize
from ftpipe.core.stage import run
from ftpipe.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clean", type=Path, required=True, help="data/clean from preprocess")
    parser.add_argument("--model", type=Path, required=True, help="base model folder (for its tokenizer)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = load_params("task", "tokenize", "model")  # model: only trust_remote_code (dvc.yaml)
    tokenize(get_task(params.task), params.tokenize, args.clean, args.model, args.out, params.model.trust_remote_code)


if __name__ == "__main__":
    run(main)

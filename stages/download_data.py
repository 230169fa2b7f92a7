"""Stage download_data: bring the raw dataset into a DVC-tracked folder (Hub, local files or synthetic)."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import quiet  # noqa: F401  (expected warnings silenced; this stage may go online)
from ftpipe.params import load_params
from ftpipe.data.download import download_data
from ftpipe.core.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for data/raw/<split>/ files")
    args = parser.parse_args()
    params = load_params("data", "task")
    download_data(params.data, args.out, params.task.type)  # the task type's plug-in may bring a generator


if __name__ == "__main__":
    run(main)

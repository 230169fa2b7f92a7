"""Stage download_model: snapshot the base model (safetensors + tokenizer) into a DVC-tracked folder."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import quiet  # noqa: F401  (expected warnings silenced; this stage may go online)
from ftpipe.params import load_params
from ftpipe.models.sources import download_model
from ftpipe.core.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the base model")
    args = parser.parse_args()
    params = load_params("model")
    download_model(params.model, args.out)


if __name__ == "__main__":
    run(main)

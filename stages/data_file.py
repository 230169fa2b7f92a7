"""Stage data_file: fingerprint one of the user's local data files (data.files).

One such stage per file (a `foreach` in dvc.yaml) makes every file a dependency DVC watches, in
the repository or outside it (../shared/...): edit one byte and `dvc status` names the file, and
`dvc repro` reruns download_data and everything after it. The file is read where it is, never
copied: preprocess reads it in place and checks it still has this fingerprint.
"""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.config import check_data_file
from ftpipe.io import sha256_file, write_json
from ftpipe.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, required=True, help="a file listed in data.files")
    parser.add_argument("--out", type=Path, required=True, help="its fingerprint, in data/inputs/")
    args = parser.parse_args()
    check_data_file("data.files", str(args.file))  # a directory or a file of the wrong type: one line, nothing read
    write_json(args.out, {"path": str(args.file), "sha256": sha256_file(args.file)})


if __name__ == "__main__":
    run(main)

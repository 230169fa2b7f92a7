"""Stage data_file: fingerprint one of the user's local data files (data.files).

One such stage per file (a `foreach` in dvc.yaml) makes every file a dependency DVC watches, in
the repository or outside it (../shared/...): edit one byte and `dvc status` names the file, and
`dvc repro` reruns download_data and everything after it. The file is read where it is, never
copied: preprocess reads it in place and checks it still has this fingerprint.

The command line names no file: a file's name is the user's, and DVC runs commands through a shell.
The stage finds its file from its own address (DVC_STAGE, `data_file@<n>`) in the validated params.
"""

import argparse
import os
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core.config import data_inputs
from ftpipe.core.errors import ConfigError
from ftpipe.core.io import sha256_file, write_json
from ftpipe.params import load_params
from ftpipe.core.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=int, help="which data.files entry (default: the n of DVC_STAGE data_file@<n>)")
    parser.add_argument("--out-dir", type=Path, default=Path("data/inputs"), help="where the fingerprint goes")
    args = parser.parse_args()
    index = args.index
    if index is None:
        stage = os.environ.get("DVC_STAGE", "")
        if not stage.startswith("data_file@") or not stage.partition("@")[2].isdigit():
            raise ConfigError("data_file", "run by DVC (data_file@<n>), or give --index")
        index = int(stage.partition("@")[2])
    # Loading validates every data.files entry (exists, a regular file, a type the task reads) before any is read.
    data = load_params("task", "data").data  # the task: the file types its plug-in reads
    entries = data_inputs(data.source, data.files)
    if not 0 <= index < len(entries):
        raise ConfigError("data.files", f"no entry {index} ({len(entries)} listed): run `python -m ftpipe.params`")
    path = Path(entries[index]["path"])
    write_json(args.out_dir / entries[index]["name"], {"path": str(path), "sha256": sha256_file(path)})


if __name__ == "__main__":
    run(main)

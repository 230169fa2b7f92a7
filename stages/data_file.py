"""Stage data_file: fingerprint one of the user's local data files (data.files).

One such stage per file (a `foreach` in dvc.yaml) makes every file a dependency DVC watches, in
the repository or outside it (../shared/...): edit one byte and `dvc status` names the file, and
`dvc repro` reruns download_data and everything after it.
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, required=True, help="a file listed in data.files")
    parser.add_argument("--out", type=Path, required=True, help="its fingerprint, in data/inputs/")
    args = parser.parse_args()
    digest = hashlib.sha256()
    try:
        with open(args.file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        sys.exit(f"error: params.yaml: data.files: {args.file}: {err.strerror}")
    # Deliberately free of ftpipe imports: its only code dep is this script.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps({"path": str(args.file), "sha256": digest.hexdigest()}, indent=2) + "\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()

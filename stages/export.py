"""Stage export: merge a PEFT adapter into its base (export.merge) and, when export.push_to_hub is
set, push model, tokenizer and card to export.repo_id with the token in HF_TOKEN.

A no-op by default (merge and push_to_hub false: it records that the tuned model goes as it is),
so an offline `dvc repro` stays green. To merge and push:
    HF_TOKEN=... dvc exp run -S export.merge=true -S export.push_to_hub=true -S export.repo_id=<user>/<name>
"""

import argparse
from pathlib import Path

# Not ftpipe.core.offline: a push needs the Hub. Nothing else here goes online.
import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core import quiet  # noqa: F401  (expected warnings silenced, as in every stage)
from ftpipe.params import load_params
from ftpipe.export import export
from ftpipe.core.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tuned", type=Path, required=True, help="models/tuned from train")
    parser.add_argument("--base", type=Path, required=True, help="the base model an adapter was trained on")
    parser.add_argument("--out", type=Path, required=True, help="models/export: the merged model, the card with scores, the export record")
    parser.add_argument("--run-record", type=Path, required=True, help="runs/train: the commit and experiment the card names")
    for name in ("base-metrics", "tuned-metrics", "compare", "details", "preprocess"):
        parser.add_argument(f"--{name}", type=Path, required=True, help="what evaluate, compare and preprocess wrote: the card's scores")
    args = parser.parse_args()
    # task and model: the merged model's head and card; method and training settings come from the
    # record train wrote into models/tuned, so a train param reruns export only through models/tuned.
    params = load_params("export", "task", "model")
    files = {name: getattr(args, name) for name in ("base_metrics", "tuned_metrics", "compare", "details", "preprocess")}
    export(params, args.tuned, args.base, args.out, evaluation_files=files, run_record=args.run_record)


if __name__ == "__main__":
    run(main)

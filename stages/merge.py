"""Stage merge: fold the tuned PEFT adapter into its base model and save the merged model.

Not in the default dvc.yaml (full/freeze runs have no adapter). After a lora/qlora run:
    python stages/merge.py --tuned models/tuned --base models/base --out models/merged
    python stages/evaluate_model.py --which tuned --model models/merged --base models/base \
        --data data/subset --clean data/clean --metrics metrics/merged.json \
        --predictions predictions/merged.jsonl --plots plots/merged
"""

import argparse
from pathlib import Path

from ftpipe import offline  # noqa: F401  (before transformers: this stage never goes online)
from ftpipe.config import load_params
from ftpipe.merge import merge
from ftpipe.stage import run
from ftpipe.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tuned", type=Path, required=True, help="the adapter folder from train")
    parser.add_argument("--base", type=Path, required=True, help="the base model the adapter was trained on")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged model")
    args = parser.parse_args()
    params = load_params("task", "model")  # model: only trust_remote_code
    merge(get_task(params.task), args.tuned, args.base, args.out, params.model.trust_remote_code)


if __name__ == "__main__":
    run(main)

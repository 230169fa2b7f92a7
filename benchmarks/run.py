"""Benchmark suite: the tutorials' recipes against ftpipe, per task, side by side in one run.

    python -m benchmarks.run --suite cpu              # the full CPU suite (90 min on 2 idle cores)
    python -m benchmarks.run --suite cpu --quick      # fewer rows, 1 epoch: a few minutes per section
    python -m benchmarks.run --suite gpu              # on CUDA in bf16, with model FLOPs utilization
    python -m benchmarks.run --quick --tiny           # seconds: the smoke test's path
    python -m benchmarks.run --suite data             # the data stages at 6.5k, 100k and 650k rows (benchmarks/data_scale.py)

Results go to benchmarks/results/<suite>[-quick|-tiny].json (written after each section) and a
summary table is printed. Run from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import arms, data_scale, extras, padding, qa, scaling, summarization, tagging, utilization
from benchmarks.common import YELP_OVERRIDES, Spec, compose_params, device_peak_tflops, isolated, mfu, non_embedding_params, prepare_model, scratch_dir
from ftpipe.precision import cpu_has_native_bf16

SECTIONS = ("arms", "qa", "tagging", "summarization", "padding", "packing", "tokenization", "options", "scaling", "ablations")
# The packing section's arms: (train.packing, train.group_by_length), the default sampler and the random one.
PACKING_ARMS = {"padded": (False, True), "packed": (True, True),
                "padded, random sampler": (False, False), "packed, random sampler": (True, False)}
RESULTS = Path("benchmarks/results")
SECTIONS_WITH_BARE = ("arms", "qa", "tagging", "summarization")
# (train.batch_tokens, evaluate.batch_tokens) of each section's token-budget arm: about the tokens of its
# row batches (Yelp 8 x 176, QA 8 x 208, tagging 16 x ~25, summarization 4 x 237; evaluation 16 rows).
TOKEN_BUDGETS = {"arms": (2048, 4096), "qa": (2048, 4096), "tagging": (512, 1024), "summarization": (1024, 4096)}
TOKENS_ARM = "ftpipe, token batches"


def build_spec(args) -> Spec:
    spec = Spec(params=compose_params(YELP_OVERRIDES), epochs=args.epochs or 3.0, threads=args.threads)
    if args.suite == "gpu":
        spec = dataclasses.replace(spec, model="bert_base_random", device="cuda")
    if args.quick:
        spec = dataclasses.replace(spec, epochs=args.epochs or 1.0, train_rows=96, eval_rows=96, tokenize_rows=10_000,
                                   scaling_sizes=[250, 500, 1000], scaling_lengths=[128, 256], option_rows=64,
                                   qa_train_questions=96, qa_eval_questions=48, sum_train_dialogues=16, sum_eval_dialogues=8,
                                   tag_train_rows=1024, tag_eval_rows=256)
    if args.tiny:  # 2-layer models and a handful of rows, inline: the smoke test
        spec = dataclasses.replace(spec, model="tiny_bert", tiny=True, train_rows=16, eval_rows=16, tokenize_rows=200,
                                   scaling_sizes=[40, 80], scaling_lengths=[128], option_rows=16, isolate=False,
                                   qa_train_questions=16, qa_eval_questions=8, sum_train_dialogues=16, sum_eval_dialogues=4,
                                   tag_train_rows=32, tag_eval_rows=32,
                                   # fp32 in both arms: on a bf16 CPU `auto` would evaluate ftpipe's arm in bf16,
                                   # and a 2-layer model's near-equal logits then flip (the test compares them).
                                   params=compose_params(YELP_OVERRIDES + ["train.precision=fp32", "evaluate.precision=fp32"]))
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


def train_tokens(arm: dict) -> float:
    """Tokens the arm trained on (padding included: the device computed it)."""
    if "train_features" in arm:  # QA: windows
        return arm["tokens_per_train_feature"] * arm["train_features"] * arm["epochs"]
    if "effective_batch" in arm:  # summarization: a fixed number of steps
        return arm["tokens_per_train_row"] * arm["train_steps"] * arm["effective_batch"]
    return arm["tokens_per_train_row"] * arm["train_rows"] * arm["epochs"]


def add_utilization(section: dict, model_dir: str, peaks: dict, datasheet_tflops: float | None) -> None:
    """Each arm's MFU against this run's measured peak (utilization.py), and on a GPU also against
    the datasheet's (`train_mfu_datasheet`, padding counted as the device computed it)."""
    non_embedding, (layers, hidden) = non_embedding_params(model_dir), utilization.attention_dims(model_dir)
    for arm in section.values():
        for run in (arm, *arm.get("repeats", [])):
            run |= utilization.utilization(run, non_embedding, layers, hidden, peaks)
        arm |= across_repeats(arm)
        if datasheet_tflops:
            arm["train_mfu_datasheet"] = mfu(model_dir, train_tokens(arm), arm["train_s"], datasheet_tflops)


def across_repeats(arm: dict) -> dict:
    """With `--repeats`, each bare-loop ratio in every repeat of the arm and their median: on a shared host the
    speed moves between an arm's phases, which no interval over one run's steps can see."""
    if not arm.get("repeats"):
        return {}
    out = {}
    for key in ("train_vs_bare", "eval_vs_bare"):
        values = [run[key] for run in (arm, *arm["repeats"]) if run.get(key) is not None]
        if values:
            out |= {f"{key}_repeats": values, f"{key}_median": round(statistics.median(values), 3)}
    return out


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def summary(results: dict) -> dict:
    arms_ = results.get("arms")
    if not arms_ or "ftpipe" not in arms_:
        return {**packing_summary(results), "vs_bare": vs_bare(results)}
    r, f = arms_["recipe"], arms_["ftpipe"]
    out = {key: ratio(f[key], r[key]) for key in ("train_samples_per_s", "eval_base_samples_per_s", "eval_tuned_samples_per_s",
                                                "train_samples_per_cpu_s", "eval_base_samples_per_cpu_s", "eval_tuned_samples_per_cpu_s")}
    out["accuracy_delta_points"] = round(100 * (f["accuracy_tuned"] - r["accuracy_tuned"]), 2)
    out["peak_rss_ratio"] = ratio(f["peak_rss_mb"], r["peak_rss_mb"])
    if "tokenization" in results:
        out["tokenization"] = results["tokenization"]["speedup"]
    if "qa" in results and "ftpipe" in results["qa"]:
        r, f = results["qa"]["recipe"], results["qa"]["ftpipe"]
        out["qa"] = {"train_questions_per_s": ratio(f["train_questions_per_s"], r["train_questions_per_s"]),
                     "eval_tuned_questions_per_s": ratio(f["eval_tuned_questions_per_s"], r["eval_tuned_questions_per_s"]),
                     "peak_rss_ratio": ratio(f["peak_rss_mb"], r["peak_rss_mb"]),
                     "f1_delta_points": round(f["f1_tuned"] - r["f1_tuned"], 2)}
    if "summarization" in results and "ftpipe_lora" in results["summarization"]:
        r, f = results["summarization"]["recipe"], results["summarization"]["ftpipe_lora"]
        out["summarization"] = {"train_samples_per_s": ratio(f["train_samples_per_s"], r["train_samples_per_s"]),
                                "generated_tokens_per_s": ratio(f["generated_tokens_per_s"], r["generated_tokens_per_s"]),
                                "peak_rss_ratio": ratio(f["peak_rss_mb"], r["peak_rss_mb"]),
                                "rougeL_delta_points": round(100 * (f["rougeL"] - r["rougeL"]), 2)}
    return {**out, **packing_summary(results), "vs_bare": vs_bare(results)}


def vs_bare(results: dict) -> dict:
    """Every ftpipe arm's steady state over the bare loop's on the same batches (train, eval), and its padding waste."""
    keys = [f"{phase}_vs_bare{k}" for phase in ("train", "eval") for k in ("", "_low", "_high", "_median_step", "_repeats", "_median")]
    return {f"{section}/{name}": {key: arm.get(key) for key in (*keys, "train_padding_waste", "eval_tuned_padding_waste")}
            for section in SECTIONS_WITH_BARE for name, arm in (results.get(section) or {}).items() if "bare_train_s" in arm}


def packing_summary(results: dict) -> dict:
    """Packed over padded, real tokens per second (wall and CPU), with each sampler."""
    arms_p = results.get("packing") or {}
    if "packed" not in arms_p or "padded" not in arms_p:
        return {}
    return {"packing": {f"{key}{where}": ratio(arms_p[f"packed{where}"][key], arms_p[f"padded{where}"][key])
                        for where in ("", ", random sampler") if f"packed{where}" in arms_p and f"padded{where}" in arms_p
                        for key in ("real_tokens_per_s", "real_tokens_per_cpu_s")}}


def side_by_side_row(label: str, recipe, ftpipe) -> list[str]:
    """One recipe | ftpipe | ratio row, or none where neither arm measured it (MFU on a CPU)."""
    if recipe is None and ftpipe is None:
        return []
    return [f"| {label} | {recipe} | {ftpipe} | {ratio(ftpipe, recipe)} |"]


TAGGING_ROWS = [("train_samples_per_s", "train sentences/s"), ("train_s", "train wall time (s)"), ("eval_tuned_samples_per_s", "eval sentences/s (tuned)"),
                ("f1_base", "entity F1 (base)"), ("f1_tuned", "entity F1 (tuned)"), ("train_useful_gflops", "train useful GFLOP/s (real tokens)"),
                ("train_mfu", "train MFU (of this run's peak)"), ("train_steady_useful_gflops", "train useful GFLOP/s, steady state"),
                ("bare_train_useful_gflops", "bare loop train useful GFLOP/s (same batches)"), ("train_vs_bare", "**train steady / bare loop**"),
                ("eval_steady_useful_gflops", "eval useful GFLOP/s, steady state (tuned)"),
                ("bare_eval_useful_gflops", "bare forward useful GFLOP/s (same batches)"), ("eval_vs_bare", "**eval steady / bare forward**"),
                ("train_padding_waste", "train padding waste"), ("eval_tuned_padding_waste", "eval padding waste (tuned)"),
                ("train_batch_rows_mean", "rows per train batch (mean)"), ("train_batch_tokens_mean", "tokens per train batch (mean, computed)"),
                ("peak_rss_mb", "peak RSS (MB)")]


BARE_COLUMNS = [("train_batch_rows_mean", "rows / train batch"), ("train_batch_tokens_mean", "tokens / train batch"),
                ("train_padding_waste", "train padding"), ("eval_tuned_padding_waste", "eval padding"), ("train_mfu", "train MFU (whole run)"),
                ("train_steady_useful_gflops", "train steady GFLOP/s"), ("bare_train_useful_gflops", "bare loop GFLOP/s"),
                ("train_vs_bare", "train / bare [95% over steps]"), ("eval_steady_useful_gflops", "eval steady GFLOP/s"),
                ("bare_eval_useful_gflops", "bare forward GFLOP/s"), ("eval_vs_bare", "eval / bare [95% over steps]")]


def bare_table(results: dict) -> list[str]:
    """Every ftpipe arm against the bare loop on its own batches, steady state, useful FLOP/s (real tokens)."""
    rows = [(f"{section}: {name}", arm) for section in SECTIONS_WITH_BARE for name, arm in (results.get(section) or {}).items()
            if "bare_train_s" in arm]
    if not rows:
        return []

    def cell(arm: dict, key: str) -> str:
        if key.endswith("_vs_bare") and arm.get(f"{key}_repeats"):  # the median over repeats, and each repeat's
            return f"{arm[f'{key}_median']} (repeats {', '.join(str(v) for v in arm[f'{key}_repeats'])})"
        if key.endswith("_vs_bare") and arm.get(f"{key}_low") is not None:  # the ratio, its interval over steps, the median step's
            return f"{arm[key]} [{arm[f'{key}_low']}, {arm[f'{key}_high']}] (median step {arm[f'{key}_median_step']})"
        return str(arm.get(key, "-"))

    lines = ["", "| arm | " + " | ".join(label for _, label in BARE_COLUMNS) + " |", "|---|" + "---:|" * len(BARE_COLUMNS)]
    return lines + [f"| {name} | " + " | ".join(cell(arm, key) for key, _ in BARE_COLUMNS) + " |" for name, arm in rows]


def spread_note(peak: dict) -> str:
    """min/median/max of each peak's timings, and a warning where they spread over 10%."""
    parts = []
    for key, scale, unit in (("peak_fp32_flops", 1e9, "fp32"), ("peak_bf16_flops", 1e9, "bf16"), ("bandwidth_bytes_per_s", 1e9, "GB/s")):
        s = peak.get(f"{key}_spread")
        if s:
            parts.append(f"{unit} {s['min'] / scale:.0f}/{s['median'] / scale:.0f}/{s['max'] / scale:.0f}")
    noisy = f"; NOISY (spread > 10%): {', '.join(peak['noisy'])}" if peak.get("noisy") else ""
    return "min/median/max " + ", ".join(parts) + noisy


def table(results: dict) -> str:
    arms_ = results.get("arms")
    lines = []
    for model, peak in results.get("peaks", {}).items():
        bf16 = f", bf16 {peak['peak_bf16_flops'] / 1e9:.0f}" if "peak_bf16_flops" in peak else ""
        lines += [f"Peaks measured in this run at {model}'s shapes {peak['matmul_shape']}, {peak['threads']} threads, CPU flags "
                  f"{' '.join(peak['cpu_flags']) or 'none of ' + ' '.join(utilization.FLAGS)}: matmul fp32 "
                  f"{peak['peak_fp32_flops'] / 1e9:.0f}{bf16} GFLOP/s; memory read {peak['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s"
                  f" (best of {peak.get('timings')} after {peak.get('warmup_s')} s warm-up; {spread_note(peak)}).", ""]
    if arms_ and "ftpipe" in arms_:
        r, f = arms_["recipe"], arms_["ftpipe"]
        lines += ["| | recipe | ftpipe | ftpipe / recipe |", "|---|---:|---:|---:|"]
        for key, label in [("train_samples_per_s", "train samples/s"), ("train_samples_per_cpu_s", "train samples per CPU-second"),
                           ("train_s", "train wall time (s)"), ("train_cpu_s", "train CPU time (s)"),
                           ("eval_base_samples_per_cpu_s", "eval samples per CPU-s (base)"), ("eval_tuned_samples_per_cpu_s", "eval samples per CPU-s (tuned)"),
                           ("eval_base_samples_per_s", "eval samples/s (base)"), ("eval_tuned_samples_per_s", "eval samples/s (tuned)"),
                           ("accuracy_base", "accuracy (base)"), ("accuracy_tuned", "accuracy (tuned)"),
                           ("tokens_per_train_row", "tokens per train row"), ("peak_rss_mb", "peak RSS (MB)"),
                           ("tokenize_peak_rss_mb", "peak RSS, tokenize (MB)"), ("eval_base_peak_rss_mb", "peak RSS, evaluate base (MB)"),
                           ("train_peak_rss_mb", "peak RSS, train (MB)"), ("eval_tuned_peak_rss_mb", "peak RSS, evaluate tuned (MB)"),
                           ("tokenize_s", "tokenize (s)"), ("train_useful_gflops", "train useful GFLOP/s (real tokens)"), ("train_mfu", "train MFU (of this run's peak)"),
                           ("train_steady_useful_gflops", "train useful GFLOP/s, steady state (after warm-up steps)"),
                           ("bare_train_useful_gflops", "bare loop train useful GFLOP/s (same batches)"), ("train_vs_bare", "**train steady / bare loop**"),
                           ("eval_steady_useful_gflops", "eval useful GFLOP/s, steady state (tuned)"),
                           ("bare_eval_useful_gflops", "bare forward useful GFLOP/s (same batches)"), ("eval_vs_bare", "**eval steady / bare forward**"),
                           ("train_batch_rows_mean", "rows per train batch (mean)"), ("train_batch_tokens_mean", "tokens per train batch (mean, computed)"),
                           
                           ("train_padding_waste", "train padding waste (computed / real − 1)"), ("eval_tuned_mfu", "eval MFU (tuned)"),
                           ("eval_tuned_padding_waste", "eval padding waste (tuned)"), ("train_mfu_datasheet", "train MFU (datasheet peak, padding counted)")]:
            lines += side_by_side_row(label, r.get(key), f.get(key))
    if "qa" in results and "ftpipe" in results["qa"]:
        r, f = results["qa"]["recipe"], results["qa"]["ftpipe"]
        lines += ["", f"| QA: {r['train_questions']} train, {r['eval_questions']} dev questions | recipe | ftpipe | ftpipe / recipe |", "|---|---:|---:|---:|"]
        for key, label in [("train_questions_per_s", "train questions/s"), ("train_samples_per_s", "train features/s"),
                           ("train_s", "train wall time (s)"), ("eval_base_questions_per_s", "eval questions/s (base)"),
                           ("eval_tuned_questions_per_s", "eval questions/s (tuned)"), ("exact_match_tuned", "exact match (tuned)"),
                           ("f1_tuned", "F1 (tuned)"), ("train_features", "train features"), ("tokens_per_train_feature", "tokens per train feature"),
                           ("peak_rss_mb", "peak RSS (MB)"), ("train_peak_rss_mb", "peak RSS, train (MB)"), ("train_useful_gflops", "train useful GFLOP/s (real tokens)"), ("train_mfu", "train MFU (of this run's peak)"),
                           ("train_steady_useful_gflops", "train useful GFLOP/s, steady state (after warm-up steps)"),
                           ("bare_train_useful_gflops", "bare loop train useful GFLOP/s (same batches)"), ("train_vs_bare", "**train steady / bare loop**"),
                           ("eval_steady_useful_gflops", "eval useful GFLOP/s, steady state (tuned)"),
                           ("bare_eval_useful_gflops", "bare forward useful GFLOP/s (same batches)"), ("eval_vs_bare", "**eval steady / bare forward**"),
                           ("train_batch_rows_mean", "rows per train batch (mean)"), ("train_batch_tokens_mean", "tokens per train batch (mean, computed)"),
                           
                           ("train_padding_waste", "train padding waste (computed / real − 1)"), ("eval_tuned_mfu", "eval MFU (tuned)"),
                           ("eval_tuned_padding_waste", "eval padding waste (tuned)"), ("train_mfu_datasheet", "train MFU (datasheet peak, padding counted)")]:
            lines += side_by_side_row(label, r.get(key), f.get(key))
    if "tagging" in results and "ftpipe" in results["tagging"]:
        f = results["tagging"]["ftpipe"]
        lines += ["", f"| tagging (entities): {f['train_rows']} train, {f['eval_rows']} eval sentences | ftpipe |", "|---|---:|"]
        lines += [f"| {label} | {f.get(key)} |" for key, label in TAGGING_ROWS if f.get(key) is not None]
    if "summarization" in results and "ftpipe_lora" in results["summarization"]:
        arms_s = results["summarization"]
        names = [n for n in ("recipe", "ftpipe_lora", "ftpipe_lora_fp32_base", "ftpipe_lora, token batches", "ftpipe_qlora") if n in arms_s]
        lines += ["", "| summarization | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for key, label in [("train_samples_per_s", "train dialogues/s"), ("train_steps_per_s", "train steps/s"),
                           ("effective_batch", "dialogues per step"), ("eval_dialogues_per_s", "eval dialogues/s"),
                           ("generated_tokens_per_s", "generated tokens/s"), ("rouge1", "ROUGE-1"), ("rougeL", "ROUGE-L"),
                           ("trainable_params", "trainable params"), ("peak_rss_mb", "peak RSS (MB)"),
                           ("train_peak_rss_mb", "peak RSS, train (MB)"), ("eval_peak_rss_mb", "peak RSS, evaluate (MB)"),
                           ("train_useful_gflops", "train useful GFLOP/s (real tokens)"), ("train_mfu", "train MFU (of this run's peak)"),
                           ("train_steady_useful_gflops", "train useful GFLOP/s, steady state (after warm-up steps)"),
                           ("bare_train_useful_gflops", "bare loop train useful GFLOP/s (same batches)"), ("train_vs_bare", "**train steady / bare loop**"),
                           ("eval_steady_useful_gflops", "eval useful GFLOP/s, steady state (tuned)"),
                           ("bare_eval_useful_gflops", "bare forward useful GFLOP/s (same batches)"), ("eval_vs_bare", "**eval steady / bare forward**"),
                           ("train_batch_rows_mean", "rows per train batch (mean)"), ("train_batch_tokens_mean", "tokens per train batch (mean, computed)"),
                           
                           ("train_padding_waste", "train padding waste (computed / real − 1)"),
                           ("eval_read_gb_per_s", "generation: weights + KV cache read, GB/s"),
                           ("eval_bandwidth_utilization", "generation: share of measured bandwidth"), ("train_mfu_datasheet", "train MFU (datasheet)")]:
            if any(arms_s[n].get(key) is not None for n in names):
                lines.append(f"| {label} | " + " | ".join(str(arms_s[n].get(key)) for n in names) + " |")
    lines += bare_table(results)
    if "packing" in results and "packed" in results["packing"]:
        arms_p = results["packing"]
        names = list(arms_p)
        lines += ["", "| train.packing (summarization, one pass) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for key, label in [("real_tokens_per_s", "real tokens/s"), ("real_tokens_per_cpu_s", "real tokens per CPU-s"),
                           ("padding_waste", "padding waste (computed / real - 1)"), ("real_tokens", "real tokens"),
                           ("computed_tokens", "computed tokens"), ("train_s", "train wall time (s)"), ("train_loss", "train loss"),
                           ("train_peak_rss_mb", "peak RSS, train (MB)"), ("precision", "precision")]:
            lines.append(f"| {label} | " + " | ".join(str(arms_p[n].get(key)) for n in names) + " |")
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
        lines += ["", "| training variant (1 epoch) | precision (train, eval) | samples/s | samples per CPU-s | accuracy (tuned) | "
                  "eval samples/s (tuned) | peak RSS, train (MB) |", "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {name} | {v['precision']}, {v.get('eval_precision')} | {v['train_samples_per_s']} | {v['train_samples_per_cpu_s']} | "
                  f"{v['accuracy_tuned']} | {v.get('eval_tuned_samples_per_s')} | {v.get('train_peak_rss_mb')} |" for name, v in results["ablations"].items()]
    if "options" in results:
        lines += ["", f"| evaluation variant ({results['options']['rows']} rows) | samples/s | same predictions |", "|---|---:|---:|"]
        lines += [f"| {name} | {v['samples_per_s']} | {v.get('same_predictions_as_recipe', '-')} |" for name, v in results["options"]["variants"].items()]
    if "padding" in results:
        lines += padding.table(results["padding"])
    if "scaling" in results:
        lines += ["", "| task | rows | max_length | tokens | tokenize (s) | train 1 epoch (s) | ms per row | peak RSS, train (MB) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {t['task']} | {t['rows']} | {t['max_length']} | {t['tokens']:,} | {t['tokenize_s']} | {t['train_s']} | "
                  f"{t['train_ms_per_row']} | {t['train_peak_rss_mb']} |" for t in results["scaling"]["points"]]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["cpu", "gpu", "data"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 96 rows, smaller tokenization/scaling")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and 16 rows, inline (smoke test)")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--train-rows", type=int, default=None, help="first N Yelp train rows (default: all 475)")
    parser.add_argument("--eval-rows", type=int, default=None, help="first N Yelp test rows (default: all 525)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each section's arms N times, interleaved, and report each bare-loop ratio's median over them")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense bf16 peak for MFU (default: looked up from its name)")
    parser.add_argument("--arms", type=lambda s: s.split(","), default=list(data_scale.ARMS),
                        help=f"--suite data: which of {','.join(data_scale.ARMS)} (default: all)")
    parser.add_argument("--rows", type=lambda s: [int(n) for n in s.split(",")], default=None,
                        help="--suite data: train rows per point, comma-separated (default 6500,100000,650000; --quick 2000,20000)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.suite == "data":
        data_scale.main(args, command)
        return

    spec = build_spec(args)
    spec = dataclasses.replace(spec, model_dir=prepare_model(spec, scratch_dir()))
    name = args.suite + ("-tiny" if args.tiny else "-quick" if args.quick else "")
    out = args.out or RESULTS / f"{name}.json"
    results = {"command": command,
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

    def side_by_side(key, runs):
        """Each arm in turn, saved as it ends: a long recipe arm is not lost if the run is cut short. With
        `--repeats N` the whole round N times, interleaved, the later rounds under each arm's `repeats`."""
        results[key] = {}
        for round_ in range(args.repeats):
            for name, run in runs.items():
                if round_ == 0:
                    results[key][name] = run()
                else:
                    results[key][name].setdefault("repeats", []).append(run())
                save()
        return results[key]

    datasheet_tflops = args.peak_tflops or device_peak_tflops()  # None on a CPU
    peaks = {}

    def measured_peaks(model_dir):
        """The machine's peaks at this model's shapes, in a fresh process, before the section's arms."""
        if model_dir not in peaks:
            peaks[model_dir] = isolated(utilization.measure_peaks, spec, model_dir)
            results.setdefault("peaks", {})[Path(model_dir).name] = peaks[model_dir]
        return peaks[model_dir]
    if "arms" in args.only:
        measured_peaks(spec.model_dir)
        train_tokens, eval_tokens = TOKEN_BUDGETS["arms"]
        section("arms", lambda: side_by_side("arms", {"recipe": lambda: isolated(arms.recipe, spec),
                                                      "ftpipe": lambda: isolated(arms.ftpipe_arm, spec),
                                                      TOKENS_ARM: lambda: isolated(arms.ftpipe_arm, spec, {"batch_tokens": train_tokens},
                                                                                   {"batch_tokens": eval_tokens})}))
        add_utilization(results["arms"], spec.model_dir, peaks[spec.model_dir], datasheet_tflops)
    if "qa" in args.only:
        qa_run = qa.qa_spec(spec)  # its params and model, prepared once here
        measured_peaks(qa_run.model_dir)
        qa_tokens = TOKEN_BUDGETS["qa"]
        section("qa", lambda: side_by_side("qa", {"recipe": lambda: isolated(qa.recipe, qa_run),
                                                  "ftpipe": lambda: isolated(qa.ftpipe_arm, qa_run),
                                                  TOKENS_ARM: lambda: isolated(qa.ftpipe_arm, qa_run, {"batch_tokens": qa_tokens[0]},
                                                                               {"batch_tokens": qa_tokens[1]})}))
        add_utilization(results["qa"], qa_run.model_dir, peaks[qa_run.model_dir], datasheet_tflops)
    if "tagging" in args.only:
        tag_run = tagging.tagging_spec(spec)
        measured_peaks(tag_run.model_dir)
        tag_tokens = TOKEN_BUDGETS["tagging"]
        section("tagging", lambda: side_by_side("tagging", {"ftpipe": lambda: isolated(tagging.ftpipe_arm, tag_run),
                                                            TOKENS_ARM: lambda: isolated(tagging.ftpipe_arm, tag_run, {"batch_tokens": tag_tokens[0]},
                                                                                         {"batch_tokens": tag_tokens[1]})}))
        add_utilization(results["tagging"], tag_run.model_dir, peaks[tag_run.model_dir], datasheet_tflops)
    if "summarization" in args.only:
        _, sum_model_dir = summarization.workload(spec)  # the model converted once here, outside the arms' time and memory
        measured_peaks(sum_model_dir)
        section("summarization", lambda: side_by_side("summarization", {
            "recipe": lambda: isolated(summarization.recipe, spec),
            "ftpipe_lora": lambda: isolated(summarization.ftpipe_arm, spec, "lora"),
            # the ablation of the frozen base stored in bf16: autocast over fp32 weights (method.frozen_base=fp32)
            "ftpipe_lora_fp32_base": lambda: isolated(summarization.ftpipe_arm, spec, "lora", "fp32"),
            "ftpipe_lora, token batches": lambda: isolated(summarization.ftpipe_arm, spec, "lora", None, TOKEN_BUDGETS["summarization"]),
            "ftpipe_qlora": lambda: isolated(summarization.ftpipe_arm, spec, "qlora")}))
        add_utilization(results["summarization"], sum_model_dir, peaks[sum_model_dir], datasheet_tflops)
    if "padding" in args.only:
        section("padding", lambda: isolated(padding.section, spec, TOKEN_BUDGETS))
    if "packing" in args.only:
        summarization.workload(spec)  # the model converted once here, outside the arms' time and memory
        section("packing", lambda: side_by_side("packing", {
            name: (lambda arm=arm: isolated(summarization.packing_arm, spec, *arm)) for name, arm in PACKING_ARMS.items()}))
    if "tokenization" in args.only:
        section("tokenization", lambda: isolated(extras.tokenization, spec))
    if "options" in args.only:
        section("options", lambda: isolated(extras.options, spec))
    if "scaling" in args.only:
        section("scaling", lambda: scaling.scaling(spec))
        results["scaling"]["plot_files"] = [str(f) for f in scaling.write_plot_files(results["scaling"], out.stem, out.parent)]
    if "ablations" in args.only:
        one = dataclasses.replace(spec, epochs=min(spec.epochs, 1.0))
        variants = {"ftpipe": ({}, {}), "ftpipe, random sampler (no length grouping)": ({"group_by_length": False}, {}),
                    "ftpipe, no malloc_trim (glibc keeps freed memory)": ({}, {}, False)}
        # The precisions `auto` did not pick, where it matters: on a GPU or a CPU with native bf16.
        # (On other CPUs auto is fp32 and bf16 is emulated, slower: benchmarks/README.md.)
        if spec.device != "cpu" or cpu_has_native_bf16():
            variants |= {"ftpipe, fp32": ({"precision": "fp32"}, {"precision": "fp32"}),
                         "ftpipe, bf16": ({"precision": "bf16"}, {"precision": "bf16"})}
        if spec.device == "cpu":  # int8 evaluation: torch's dynamic quantization, opt-in (evaluate.precision=int8)
            variants["ftpipe, int8 evaluation"] = ({}, {"precision": "int8"})
        section("ablations", lambda: {k: isolated(arms.ftpipe_arm, one, *v) for k, v in variants.items()})
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    print(table(results))
    print(json.dumps(results["summary"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

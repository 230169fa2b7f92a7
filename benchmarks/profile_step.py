"""Where one training step's time goes, and what the optimizer and attention kernels change.

    python -m benchmarks.profile_step                 # Yelp (MiniLM, full) and summarization (SmolLM2, LoRA)
    python -m benchmarks.profile_step --tiny          # tiny models: the wiring only

For each workload, one batch as ftpipe's collator pads it (train.batch_size rows of about the training set's
median length, the task's own tokenization), the model as ftpipe's method builds it (LoRA: the frozen base in
bf16 where train.precision resolves to bf16), under ftpipe's precision context:
- the median seconds of a plain forward, backward and optimizer step after warm-up steps, with torch's AdamW
  as a for-loop, foreach and fused, and with SDPA and eager attention (fused AdamW, the Trainer's default);
- a torch.profiler table of one such step (SDPA, fused AdamW), operators by self CPU time.
Writes a markdown file (default benchmarks/results/cpu-profile.md) with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from benchmarks.common import YELP_OVERRIDES, Spec, compose_params, prepare_model, scratch_dir, setup_process, task_examples, validated
from benchmarks.utilization import cpu_flags

WARMUP, REPEATS = 3, 7


def workloads(tiny: bool) -> list[tuple[str, dict, str]]:
    """(name, params, model directory) of the Yelp and the summarization workload."""
    from benchmarks import summarization

    yelp = compose_params(YELP_OVERRIDES + (["model=tiny_bert"] if tiny else []))
    spec = Spec(params=yelp, model="tiny_bert" if tiny else "minilm", tiny=tiny)
    summ_params, summ_dir = summarization.workload(spec)
    return [(f"yelp ({'tiny_bert' if tiny else 'MiniLM'}, full fine-tuning)", yelp, prepare_model(spec, scratch_dir())),
            (f"summarization ({'tiny_llama' if tiny else 'SmolLM2'}, LoRA)", summ_params, summ_dir)]


def one_batch(params: dict, model_dir: str, rows: int = 64):
    """train.batch_size rows around the median length, tokenized and padded as ftpipe trains them."""
    from ftpipe import packing
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    p = validated(params, "task", "tokenize", "train")
    task = get_task(p.task)
    tokenizer = load_tokenizer(model_dir, task)
    features = task.tokenize(task_examples(params, "train", rows), tokenizer, "train", None, p.tokenize.batch_size)
    # what the Trainer hands its collator: the model's own columns (it drops the rest)
    features = features.select_columns([c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in features.column_names])
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    middle = len(order) // 2 - p.train.batch_size // 2
    chosen = [features[i] for i in order[max(middle, 0):max(middle, 0) + p.train.batch_size]]
    return task, tokenizer, packing.train_collator(task, tokenizer, False)(chosen)


def build(params: dict, model_dir: str, task, tokenizer, attention: str, bf16: bool):
    import torch

    from ftpipe.methods import get_method

    p = validated(params, "model", "method")
    torch.manual_seed(0)
    model = get_method(p.method).build(task, Path(model_dir), tokenizer, p.model, SimpleNamespace(args=SimpleNamespace(bf16=bf16)))
    model.set_attn_implementation(attention)
    return model.train()


def step_seconds(model, batch, optimizer, precision: str) -> list[float]:
    from ftpipe.precision import autocast

    seconds = []
    for _ in range(WARMUP + REPEATS):
        start = time.perf_counter()
        with autocast(precision):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    return seconds[WARMUP:]


def adamw(model, kind: str):
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    flags = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[kind]
    return torch.optim.AdamW(trainable, lr=1e-5, **flags)


def measure(name: str, params: dict, model_dir: str) -> list[str]:
    import torch

    from ftpipe.precision import resolve

    precision = resolve(validated(params, "train").train.precision)
    task, tokenizer, batch = one_batch(params, model_dir)
    lines = [f"## {name}", "", f"One batch: {tuple(batch['input_ids'].shape)} (rows x padded length), "
             f"{int(batch['attention_mask'].sum())} real tokens; precision {precision}; {torch.get_num_threads()} threads.", "",
             "| attention | AdamW | step median (s) | min | max | vs SDPA + fused |", "|---|---|---:|---:|---:|---:|"]
    results = {}
    for attention, kind in [("sdpa", "fused"), ("sdpa", "foreach"), ("sdpa", "for-loop"), ("eager", "fused")]:
        model = build(params, model_dir, task, tokenizer, attention, precision == "bf16")
        s = step_seconds(model, batch, adamw(model, kind), precision)
        results[(attention, kind)] = s
        base = statistics.median(results[("sdpa", "fused")])
        lines.append(f"| {attention} | {kind} | {statistics.median(s):.3f} | {min(s):.3f} | {max(s):.3f} | {statistics.median(s) / base:.2f} |")
    model = build(params, model_dir, task, tokenizer, "sdpa", precision == "bf16")
    optimizer = adamw(model, "fused")
    step_seconds(model, batch, optimizer, precision)  # warm
    from torch.profiler import ProfilerActivity, profile

    from ftpipe.precision import autocast

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with autocast(precision):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40)
    return lines + ["", "torch.profiler, one step (SDPA, fused AdamW), top operators by self CPU time:", "", "```", table.strip(), "```", ""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu-profile.md"))
    args = parser.parse_args(argv)
    setup_process(Spec())
    lines = ["# One training step, profiled", "", "Command: `python -m benchmarks.profile_step" + (" --tiny" if args.tiny else "") + "`, "
             f"{time.strftime('%Y-%m-%d %H:%M')} UTC; CPU flags found: {' '.join(cpu_flags())}.", ""]
    for name, params, model_dir in workloads(args.tiny):
        lines += measure(name, params, model_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

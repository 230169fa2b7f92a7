"""Tokenization throughput and the per-option evaluation micro-benchmarks (Yelp, the workload model)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.common import TUTORIAL_BATCH, TUTORIAL_MAX_LENGTH, Spec, sync, task_examples, timer, validated


def tokenization(spec: Spec) -> dict:
    """Per-example tokenizer calls padded to 512 (the QA tutorial's encode_plus loop) against ftpipe's
    batched `datasets.map` with the fast tokenizer, on the same rows (the Yelp texts repeated)."""
    import datasets

    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    p = validated(spec.params, "task", "tokenize")
    task = get_task(p.task)
    tokenizer = load_tokenizer(spec.model_dir, task)
    base = datasets.concatenate_datasets([task_examples(spec.params, "train", None), task_examples(spec.params, "eval", None)])
    rows = base.select(np.arange(spec.tokenize_rows) % len(base)).flatten_indices()
    out: dict = {"rows": len(rows), "fast_tokenizer": tokenizer.is_fast}
    # The QA tutorial: BertTokenizer.encode_plus per example, padded to 512, as tensors. Its BertTokenizer
    # was the pure-Python one (transformers v5 calls it BertTokenizerLegacy). The per-example loop with the
    # fast tokenizer is measured too, as the stricter baseline. Loops run on a slice (>= 2,000 rows).
    from transformers import BertTokenizerLegacy

    loops = {"loop_python_tokenizer": tokenizer, "loop_fast_tokenizer": tokenizer}
    if (Path(spec.model_dir) / "vocab.txt").exists():  # the tiny test model has only tokenizer.json
        loops["loop_python_tokenizer"] = BertTokenizerLegacy.from_pretrained(spec.model_dir)
    loop_rows = rows.select(range(min(len(rows), max(2000, len(rows) // 20))))["text"]
    out["loop_rows"] = len(loop_rows)
    for key, tok in loops.items():
        with timer(out, f"{key}_s"):
            for text in loop_rows:
                tok(text, padding="max_length", truncation=True, max_length=TUTORIAL_MAX_LENGTH, return_tensors="pt")
        out[f"{key}_rows_per_s"] = round(len(loop_rows) / out[f"{key}_s"])
    def transformers_call(batch):  # what ftpipe did before: the tokenizer's own call, offsets and masks computed
        return {"input_ids": tokenizer(batch["text"], truncation=True, max_length=task.cfg.max_length)["input_ids"], "labels": batch["label"]}

    # In-process variants first: once datasets has forked (num_proc >= 1), the tokenizer's threads stay off.
    variants = {
        "ftpipe": lambda: task.tokenize(rows, tokenizer, "train", p.tokenize.num_proc, p.tokenize.batch_size),
        "transformers_call": lambda: rows.map(transformers_call, batched=True, batch_size=p.tokenize.batch_size,
                                              num_proc=p.tokenize.num_proc, remove_columns=["text", "label"]),
        "ftpipe_num_proc1": lambda: task.tokenize(rows, tokenizer, "train", 1, p.tokenize.batch_size),
        "ftpipe_num_proc2": lambda: task.tokenize(rows, tokenizer, "train", 2, p.tokenize.batch_size),
    }
    for key, fn in variants.items():
        with timer(out, f"{key}_s"):
            fn()
        out[f"{key}_rows_per_s"] = round(len(rows) / out[f"{key}_s"])
    out["ftpipe_num_proc"] = p.tokenize.num_proc
    out["speedup"] = round(out["ftpipe_rows_per_s"] / out["loop_python_tokenizer_rows_per_s"], 1)  # vs the tutorial
    out["speedup_vs_fast_loop"] = round(out["ftpipe_rows_per_s"] / out["loop_fast_tokenizer_rows_per_s"], 1)
    return out


def options(spec: Spec) -> dict:
    """Evaluation throughput of the base model on the same Yelp rows, one speed-up changed at a time.

    Forward passes stand in for training steps: the same padding/attention/precision choices decide
    both, and a forward costs a third of a training step. Each variant is timed twice, interleaved
    with the others, and the faster pass is kept.
    """
    import torch
    from transformers import set_seed

    from ftpipe.inference import logits as batched_forward
    from ftpipe.models.loading import load_for_task, load_tokenizer
    from ftpipe.precision import autocast, for_inference, resolve
    from ftpipe.tasks import get_task

    p = validated(spec.params, "task", "tokenize", "evaluate")
    task = get_task(p.task)
    tokenizer = load_tokenizer(spec.model_dir, task)
    eval_set = task_examples(spec.params, "eval", spec.option_rows)
    dynamic = task.tokenize(eval_set, tokenizer, "eval", p.tokenize.num_proc, p.tokenize.batch_size)
    padded = eval_set.map(lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=TUTORIAL_MAX_LENGTH), batched=True)
    collator = task.collator(tokenizer)
    bs = p.evaluate.batch_size
    default_threads = torch.get_num_threads()

    def model(attn="sdpa"):
        set_seed(0)
        return load_for_task(task, spec.model_dir, tokenizer, attn_implementation=attn).to(spec.device)

    sdpa, eager = model(), model("eager")
    auto = resolve(p.evaluate.precision)  # ftpipe's default on this machine
    ftpipe = dict(m=sdpa, feats=dynamic, bs=bs, sort=True, precision=auto)
    variants = {
        "padded512_bs8_unsorted (recipe)": dict(m=sdpa, feats=padded, bs=TUTORIAL_BATCH, sort=False),
        "dynamic_bs8_unsorted": dict(m=sdpa, feats=dynamic, bs=TUTORIAL_BATCH, sort=False),
        "dynamic_bs8_sorted": dict(m=sdpa, feats=dynamic, bs=TUTORIAL_BATCH, sort=True),
        f"dynamic_bs{bs}_sorted": dict(m=sdpa, feats=dynamic, bs=bs, sort=True),
        f"ftpipe (dynamic_bs{bs}_sorted, {auto})": ftpipe,
        "ftpipe + eager attention": {**ftpipe, "m": eager},
        "ftpipe + 1 thread": {**ftpipe, "threads": 1},
        **{f"ftpipe, batch {n}": {**ftpipe, "bs": n} for n in (8, 32) if n != bs},
    }
    if auto != "bf16":
        variants["ftpipe + bf16 autocast"] = {**ftpipe, "precision": "bf16"}
    if spec.device == "cpu":  # evaluate.precision=int8: every Linear's weights in int8 (dynamic quantization)
        variants["ftpipe + int8 dynamic quantization"] = {**ftpipe, "m": for_inference(model(), "int8"), "precision": "int8"}
    if spec.device == "cpu" and default_threads < 4:
        variants[f"ftpipe + {default_threads * 2} threads (oversubscribed)"] = {**ftpipe, "threads": default_threads * 2}

    def run(v):
        torch.set_num_threads(v.get("threads", default_threads))
        with autocast(v.get("precision", "fp32")):
            sync(spec.device)
            start = time.perf_counter()
            logits = batched_forward(v["m"], collator, v["feats"], v["bs"], v["sort"])
            sync(spec.device)
        torch.set_num_threads(default_threads)
        return time.perf_counter() - start, logits

    times = {name: [] for name in variants}
    reference = None
    agree = {}
    for _ in range(2):
        for name, v in variants.items():
            seconds, logits = run(v)
            times[name].append(seconds)
            reference = logits if reference is None else reference
            agree[name] = round(float(np.mean(logits.argmax(-1) == reference.argmax(-1))), 4)
    out = {"rows": len(eval_set), "default_threads": default_threads, "variants": {}}
    for name, ts in times.items():
        out["variants"][name] = {"samples_per_s": round(len(eval_set) / min(ts), 2), "seconds": [round(t, 2) for t in ts],
                                 "same_predictions_as_recipe": agree[name]}

    # torch.compile: compile time is paid once per process (and again for new shapes).
    compiled = torch.compile(model(), dynamic=True)
    first, _ = run({**ftpipe, "m": compiled})
    second, _ = run({**ftpipe, "m": compiled})
    out["variants"]["ftpipe + torch.compile"] = {"samples_per_s": round(len(eval_set) / second, 2),
                                                 "seconds": [round(first, 2), round(second, 2)],
                                                 "note": "first pass includes compilation"}
    return out

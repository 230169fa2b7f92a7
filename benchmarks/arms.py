"""The two arms of the headline comparison, each run in its own process on the same rows and model.

recipe: the Yelp tutorial as written: `map(batched=True)` with padding="max_length" (512), fp32,
        batch 8, Trainer defaults (random sampler, lr 5e-5, no warmup), Trainer.predict to evaluate.
ftpipe: ftpipe's own package code with its defaults: the task plug-in's tokenize (no padding) and
        collator (pads each batch), training_arguments (group_by_length, precision auto),
        task.predict (ftpipe.inference: sorted by length, batch evaluate.batch_size).
Both evaluate the base model (a fresh head seeded the same way) and the tuned one. Per-epoch
evaluation during training (the tutorial's eval_strategy="epoch") is left out of both, so train
time is training only.
"""

from __future__ import annotations

import numpy as np

from benchmarks import bare
from benchmarks.common import TUTORIAL_BATCH, TUTORIAL_MAX_LENGTH, Spec, ftpipe_fit, gpu_peak_mb, scratch_dir, task_examples, timer, validated
from benchmarks.utilization import TokenCounter, eval_stats

EVAL_SEED = 0  # ftpipe's evaluate.seed: the base model's fresh head
TRAIN_SEED = 42  # the tutorial's and ftpipe's train seed


def _accuracy(predictions, references) -> float:
    return round(float(np.mean(np.asarray(predictions) == np.asarray(references))), 4)


def recipe(spec: Spec) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, default_data_collator, set_seed

    out: dict = {"arm": "recipe"}
    train_set, eval_set = task_examples(spec.params, "train", spec.train_rows), task_examples(spec.params, "eval", spec.eval_rows)
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    labels = validated(spec.params, "task").task.labels

    def encode(batch):
        return tokenizer(batch["text"], padding="max_length", truncation=True, max_length=TUTORIAL_MAX_LENGTH)

    with timer(out, "tokenize_s"):
        train_tok = train_set.map(encode, batched=True).rename_column("label", "labels")
        eval_tok = eval_set.map(encode, batched=True).rename_column("label", "labels")

    def load():
        model = AutoModelForSequenceClassification.from_pretrained(spec.model_dir, num_labels=len(labels))
        return model.to(spec.device)

    args = TrainingArguments(
        output_dir=str(scratch_dir() / "recipe"), num_train_epochs=spec.epochs,
        per_device_train_batch_size=TUTORIAL_BATCH, per_device_eval_batch_size=TUTORIAL_BATCH,
        seed=TRAIN_SEED, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=spec.device == "cpu",
    )

    def evaluate(model, which):
        trainer = Trainer(model=model, args=args)
        with timer(out, f"eval_{which}_s", spec.device):
            logits = trainer.predict(eval_tok).predictions
        out[f"eval_{which}_samples_per_s"] = round(len(eval_tok) / out[f"eval_{which}_s"], 2)
        out[f"eval_{which}_samples_per_cpu_s"] = round(len(eval_tok) / out[f"eval_{which}_cpu_s"], 2)
        out[f"accuracy_{which}"] = _accuracy(logits.argmax(-1), eval_tok["labels"])

    set_seed(EVAL_SEED)
    evaluate(load(), "base")
    set_seed(TRAIN_SEED)
    model = load()
    counter = TokenCounter(default_data_collator)  # the Trainer's own collator here, counted
    timed_train(Trainer(model=model, args=args, train_dataset=train_tok, data_collator=counter), out, spec.device)
    evaluate(model, "tuned")
    lengths = [sum(mask) for mask in eval_tok["attention_mask"]]
    for which in ("base", "tuned"):
        out |= eval_stats(f"eval_{which}", lengths, TUTORIAL_BATCH, sort=False, padded_to=TUTORIAL_MAX_LENGTH)
    out.update(**counter.stats("train"), train_rows=len(train_tok), eval_rows=len(eval_tok), epochs=spec.epochs,
               tokens_per_train_row=TUTORIAL_MAX_LENGTH, gpu_peak_mb=gpu_peak_mb(), torch_threads=torch.get_num_threads())
    return out


def timed_train(trainer, out: dict, device: str) -> None:
    """Train, recording wall and CPU time, samples/s (both ways) and the final loss into `out`."""
    with timer(out, "train_s", device):
        metrics = trainer.train().metrics
    out["train_samples_per_s"] = round(metrics["train_samples_per_second"], 3)
    out["train_samples_per_cpu_s"] = round(metrics["train_samples_per_second"] * metrics["train_runtime"] / out["train_cpu_s"], 3)
    out["train_loss"] = round(metrics["train_loss"], 4)


def yelp_scores(task, rows) -> dict:
    """The Yelp arm's evaluation record: accuracy, and how often each class was predicted."""
    from collections import Counter

    return {"accuracy": round(task.metrics(rows)["accuracy"], 4),
            "predicted": dict(sorted(Counter(row["prediction"] for row in rows).items()))}


def ftpipe_arm(spec: Spec, train_overrides: dict | None = None, eval_overrides: dict | None = None, trim: bool = True,
               examples: dict | None = None, scores=yelp_scores, name: str = "ftpipe") -> dict:
    """ftpipe's package code on `examples` ({"train", "eval"} datasets; default: the Yelp rows), each evaluation
    recorded as `scores(task, rows)` under `<key>_<base|tuned>`, training named `name`."""
    import contextlib
    import dataclasses
    from unittest import mock

    import torch
    from transformers import TrainerCallback, set_seed

    from ftpipe.models.loading import load_for_task, load_tokenizer
    from ftpipe.precision import autocast, for_inference, resolve
    from ftpipe.tasks import get_task
    from ftpipe.trainer import ReturnFreedMemory

    p = validated(spec.params, "task", "model", "method", "tokenize", "train", "evaluate")
    # No validation split: both arms train on the same rows and are timed on training alone.
    train_cfg = dataclasses.replace(p.train, epochs=spec.epochs, validation_fraction=0, **(train_overrides or {}))
    p = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, **(eval_overrides or {})))
    out: dict = {"arm": "ftpipe", "train_config": dataclasses.asdict(train_cfg), "evaluate_batch_size": p.evaluate.batch_size}
    task = get_task(p.task)
    tokenizer = load_tokenizer(spec.model_dir, task)
    examples = examples or {"train": task_examples(spec.params, "train", spec.train_rows), "eval": task_examples(spec.params, "eval", spec.eval_rows)}
    with timer(out, "tokenize_s"):
        features = {split: task.tokenize(ds, tokenizer, split, p.tokenize.num_proc, p.tokenize.batch_size) for split, ds in examples.items()}

    def evaluate(model, which):
        model = for_inference(model.to(spec.device), p.evaluate.precision)
        log = bare.ForwardLog(model, spec.device)
        with timer(out, f"eval_{which}_s", spec.device), autocast(p.evaluate.precision):
            rows = task.predict(model, tokenizer, features["eval"], examples["eval"], p.evaluate)
        out[f"eval_{which}_samples_per_s"] = round(len(rows) / out[f"eval_{which}_s"], 2)
        out[f"eval_{which}_samples_per_cpu_s"] = round(len(rows) / out[f"eval_{which}_cpu_s"], 2)
        out.update({f"{key}_{which}": value for key, value in scores(task, rows).items()})
        return model, log

    set_seed(EVAL_SEED)
    evaluate(load_for_task(task, spec.model_dir, tokenizer), "base")
    batches: list = []  # what ftpipe's collator produced: the bare loop's training batches
    with contextlib.ExitStack() as stack:
        if not trim:  # the ablation: glibc keeps what each step frees
            stack.enter_context(mock.patch.object(ReturnFreedMemory, "on_step_end", TrainerCallback.on_step_end))
        model = ftpipe_fit(dataclasses.replace(p, train=train_cfg), task, tokenizer, features["train"], spec.model_dir, name,
                           spec.device, out, keep=batches).model
    bare.compare(out, *evaluate(model, "tuned"), batches, train_cfg, p.evaluate.precision, spec.device)
    lengths = [len(ids) for ids in features["train"]["input_ids"]]
    for which in ("base", "tuned"):
        out |= eval_stats(f"eval_{which}", [len(ids) for ids in features["eval"]["input_ids"]], p.evaluate.batch_size, p.evaluate.sort_by_length,
                              batch_tokens=p.evaluate.batch_tokens)
    out.update(train_rows=len(features["train"]), eval_rows=len(features["eval"]), epochs=spec.epochs,
               tokens_per_train_row=round(float(np.mean(lengths)), 1), gpu_peak_mb=gpu_peak_mb(),
               torch_threads=torch.get_num_threads(), precision=resolve(train_cfg.precision),
               eval_precision=resolve(p.evaluate.precision))
    return out

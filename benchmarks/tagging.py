"""The tagging arm (token classification): ftpipe's entity tagger against the bare loop on its own batches.

Workload: experiment=entities_minilm (packaged MiniLM; tiny_bert for the smoke test) on ftpipe's own
synthetic entity sentences (the token_classification plug-in's SYNTHETIC generator, seeds 0 and 1 for
train and eval), read through the plug-in's `clean`. There is no tutorial recipe for tagging among
shared/seeds, so this section has ftpipe's arm alone; its yardstick is the bare loop (bare.py): the same
model on the batches ftpipe's collator produced and the inputs its evaluation handed the model.
"""

from __future__ import annotations

import dataclasses

from benchmarks import bare
from benchmarks.arms import EVAL_SEED
from benchmarks.common import Spec, compose_params, ftpipe_fit, gpu_peak_mb, prepare_model, scratch_dir, timer, validated
from benchmarks.utilization import eval_stats

TAGGING_OVERRIDES = ["experiment=entities_minilm"]


def tagging_spec(spec: Spec) -> Spec:
    """`spec` with the tagging workload's params and a model directory prepared from them."""
    if spec.params.get("task", {}).get("type") == "token_classification" and spec.model_dir:
        return spec
    model = "tiny_bert" if spec.tiny else "minilm"
    spec = dataclasses.replace(spec, params=compose_params(TAGGING_OVERRIDES + [f"model={model}"]), model=model)
    return dataclasses.replace(spec, model_dir=prepare_model(spec, scratch_dir()))


def sentences(params: dict, rows: int, seed: int):
    """`rows` synthetic entity sentences, cleaned by the plug-in as its data stage cleans them."""
    import datasets

    from ftpipe.tasks import get_task, plugin_module

    p = validated(params, "task", "data")
    task = get_task(p.task)
    generate = plugin_module(p.task.type).SYNTHETIC["entities"]
    return datasets.Dataset.from_list([task.clean(raw, p.data) | {"id": raw["id"]} for raw in generate(rows, seed)])


def ftpipe_arm(spec: Spec, train_overrides: dict | None = None, eval_overrides: dict | None = None) -> dict:
    import torch
    from transformers import set_seed

    from ftpipe.models.loading import load_for_task, load_tokenizer
    from ftpipe.precision import autocast, for_inference, resolve
    from ftpipe.tasks import get_task

    spec = tagging_spec(spec)
    p = validated(spec.params, "task", "model", "method", "tokenize", "train", "evaluate")
    train_cfg = dataclasses.replace(p.train, epochs=spec.epochs, validation_fraction=0, **(train_overrides or {}))
    p = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, **(eval_overrides or {})))
    out: dict = {"arm": "ftpipe", "train_config": dataclasses.asdict(train_cfg), "evaluate_batch_size": p.evaluate.batch_size}
    task = get_task(p.task)
    tokenizer = load_tokenizer(spec.model_dir, task)
    examples = {"train": sentences(spec.params, spec.tag_train_rows, 0), "eval": sentences(spec.params, spec.tag_eval_rows, 1)}
    with timer(out, "tokenize_s"):
        features = {split: task.tokenize(ds, tokenizer, split, p.tokenize.num_proc, p.tokenize.batch_size) for split, ds in examples.items()}

    def evaluate(model, which):
        model = for_inference(model.to(spec.device), p.evaluate.precision)
        log = bare.ForwardLog(model, spec.device)
        with timer(out, f"eval_{which}_s", spec.device), autocast(p.evaluate.precision):
            rows = task.predict(model, tokenizer, features["eval"], examples["eval"], p.evaluate)
        out[f"eval_{which}_samples_per_s"] = round(len(rows) / out[f"eval_{which}_s"], 2)
        out[f"f1_{which}"] = round(task.metrics(rows)["f1"], 4)
        return model, log

    set_seed(EVAL_SEED)
    evaluate(load_for_task(task, spec.model_dir, tokenizer), "base")
    batches: list = []
    model = ftpipe_fit(dataclasses.replace(p, train=train_cfg), task, tokenizer, features["train"], spec.model_dir, "ftpipe-tagging",
                       spec.device, out, keep=batches).model
    bare.compare(out, *evaluate(model, "tuned"), batches, train_cfg, p.evaluate.precision, spec.device)
    for which in ("base", "tuned"):
        out |= eval_stats(f"eval_{which}", [len(ids) for ids in features["eval"]["input_ids"]], p.evaluate.batch_size, p.evaluate.sort_by_length,
                              batch_tokens=p.evaluate.batch_tokens)
    out.update(train_rows=len(features["train"]), eval_rows=len(features["eval"]), epochs=spec.epochs,
               tokens_per_train_row=round(sum(len(ids) for ids in features["train"]["input_ids"]) / len(features["train"]), 1),
               gpu_peak_mb=gpu_peak_mb(), torch_threads=torch.get_num_threads(),
               precision=resolve(train_cfg.precision), eval_precision=resolve(p.evaluate.precision))
    return out

"""The tagging arm (token classification): ftpipe's entity tagger against the bare loop on its own batches.

Workload: experiment=entities_minilm (packaged MiniLM; tiny_bert for the smoke test) on ftpipe's own
synthetic entity sentences (the token_classification plug-in's SYNTHETIC generator, seeds 0 and 1 for
train and eval), read through the plug-in's `clean`. There is no tutorial recipe for tagging among
shared/seeds, so this section has ftpipe's arm alone; its yardstick is the bare loop (bare.py): the same
model on the batches ftpipe's collator produced and the inputs its evaluation handed the model.
"""

from __future__ import annotations

import dataclasses

from benchmarks import arms
from benchmarks.common import Spec, compose_params, prepare_model, scratch_dir, validated

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


def f1_scores(task, rows) -> dict:
    return {"f1": round(task.metrics(rows)["f1"], 4)}


def ftpipe_arm(spec: Spec, train_overrides: dict | None = None, eval_overrides: dict | None = None) -> dict:
    """The Yelp arm's code (arms.ftpipe_arm: ftpipe's fit, the bare loop, the evaluation records) on entity sentences."""
    spec = tagging_spec(spec)
    examples = {"train": sentences(spec.params, spec.tag_train_rows, 0), "eval": sentences(spec.params, spec.tag_eval_rows, 1)}
    return arms.ftpipe_arm(spec, train_overrides, eval_overrides, examples=examples, scores=f1_scores, name="ftpipe-tagging")

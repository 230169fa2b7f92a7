"""The model card: README.md in the tuned (or merged) model folder, with the Hub's YAML metadata.

It says what the model is (task, data, method, trainable parameters, key training settings), how to
load it with plain transformers/peft, and the command that reproduces it. Written by train (main
process, into the folder before it moves into place) and by export for a merged model; everything
comes from the params the stage loaded and the record train wrote beside the model
(ftpipe_train.json), never from paths of this repository: the card travels with the model.

Train's card has no test scores (evaluate runs after it); export writes the card again with them
(`evaluation`: base and tuned headline metrics, their intervals, the split sizes), in the Hub's
`model-index` form too, into models/export/README.md, and that is the card a push uploads.
Text from config or data (task name, labels, base identity) is escaped as in reports/compare.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ftpipe.core.records import RunRecord, TrainRecord
from ftpipe.core.results import Evaluation
from ftpipe.core.markdown import inert as _md, interval as _interval
from ftpipe.models.loading import base_id

CARD = "README.md"


# The training settings a card shows, recorded by train (the card of a merged export reads them
# from the record, so export depends on no train param).
CARD_TRAIN_KEYS = ("lr", "epochs", "max_steps", "batch_size", "grad_accum", "weight_decay", "warmup", "scheduler", "seed",
                   "label_smoothing", "validation_fraction", "packing")


def write_card(model_dir: Path, params, run=None, evaluation: Evaluation | None = None, model_from: Path | None = None,
               ran: RunRecord | None = None) -> Path:
    """Write `model_dir/README.md` from the task and model params and the record train wrote in the
    model folder (`model_from`, default `model_dir`: method and training settings); `evaluation`
    (from export) adds the test scores, `ran` (the train run's record, from export) the commit and
    experiment that made it. Train's own card has neither: its folder's hash is then the weights'."""
    model_dir = Path(model_dir)
    model_from = Path(model_from or model_dir)
    record = TrainRecord.load(model_from, missing_ok=True)
    base = base_id(record.base_model if record else {})
    adapter = (model_from / "adapter_config.json").exists()
    from ftpipe.tasks import get_task

    task, plugin = params.task, get_task(params.task)
    data = _data()
    method = record.method if record else {}
    meta = {"base_model": base, "library_name": "peft" if adapter else "transformers", "pipeline_tag": plugin.hub_pipeline_tag,
            "tags": ["ftpipe", task.name, method.get("name")], "datasets": data.get("datasets"), "metrics": list(plugin.hub_metrics)}
    if evaluation:
        meta["model-index"] = model_index(f"{task.name}-{method.get('name', 'ftpipe')}", plugin, data, evaluation.tuned)
    meta = {k: v for k, v in meta.items() if v}
    text = "\n".join([
        "---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
        f"# {_md(task.name)}: {_md(method.get('name', 'an ftpipe'))} fine-tune of {_md(base)}", "",
        _what(task, method, record, base), "",
        "## Data", "", *_data_lines(data, run), "",
        "## Training", "", *_training_lines(record), "",
        "## Evaluation", "", *_evaluation_lines(evaluation, plugin), "",
        "## How to load", "",
        "With plain transformers" + (" and peft (this folder is an adapter: load its base, then the adapter)" if adapter else "")
        + "; set `model_dir` to this folder" + (" and `base` to the base model (its Hub id, or a local copy such as `models/base`)" if adapter else "") + ".",
        "", "```python", load_snippet(plugin, params, base, adapter), "```", "",
        "Or, in the ftpipe repository: `ftpipe-predict --model <this folder> --file inputs.jsonl`.", "",
        "## Reproduce", "", *_reproduce_lines(record, ran), "",
    ])
    path = model_dir / CARD
    path.write_text(text)
    return path


def model_index(name: str, plugin, data: dict, tuned: dict) -> list[dict]:
    """The Hub's `model-index` results: the tuned model's headline metrics on the evaluation set."""
    dataset = {"name": data.get("text") or "evaluation set", "type": (data.get("datasets") or ["local"])[0]}
    metrics = [{"type": k, "value": round(float(v), 6), "name": k} for k, v in tuned.items()]
    return [{"name": name, "results": [{"task": {"type": plugin.hub_pipeline_tag}, "dataset": dataset, "metrics": metrics}]}]


def _evaluation_lines(evaluation: Evaluation | None, plugin) -> list[str]:
    if not evaluation:
        return ["Train writes this card before evaluation, so it holds no test scores: see `metrics/tuned.json`, "
                "`metrics/base.json` and `reports/compare.md` in the repository the model came from, or this model's "
                f"exported card (models/export/README.md) ({plugin.score_scale})."]
    base, tuned, tested, examples = evaluation.base, evaluation.tuned, evaluation.significance, evaluation.eval_examples
    lines = [f"On the held-out evaluation set ({plugin.score_scale})"
             + (f": {examples:,} examples evaluated of {evaluation.eval_records or examples:,} clean records" if examples else "")
             + (f"; {evaluation.train_records:,} clean training records" if evaluation.train_records else "")
             + ". The base is the same model before tuning (a fresh head where it had none).", "",
             "| metric | base | tuned | delta | 95% interval | p |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {_md(k)} | {base[k]:.4f} | {v:.4f} | {v - base[k]:+.4f} | {_interval(tested.get(k))} |" for k, v in tuned.items() if k in base]
    if tested:
        lines += ["", "Intervals and p-values: a paired bootstrap over the evaluation examples, each metric on its own."]
    return lines


def load_snippet(plugin, params, base: str, adapter: bool) -> str:
    """Python that loads this model and runs it once (the task's example); the tests run it as written."""
    trust = ", trust_remote_code=True" if params.model is not None and params.model.trust_remote_code else ""
    auto = plugin.auto_class
    imports, example = plugin.card_example(adapter)
    lines = [*imports, *(["from peft import PeftModel"] if adapter else []), f"from transformers import {auto}, AutoTokenizer",
             "", 'model_dir = "."  # this folder']
    lines += [f"base = {json.dumps(base)}  # the base model the adapter was trained on"] if adapter else []  # quoted safely
    lines += [f"tokenizer = AutoTokenizer.from_pretrained(model_dir{trust})"]
    if adapter:
        kwargs = "".join(f", {k}={v!r}" for k, v in task_model_kwargs(plugin).items())
        lines += [f"model = PeftModel.from_pretrained({auto}.from_pretrained(base{kwargs}{trust}), model_dir)",
                  "model = model.merge_and_unload()  # a plain transformers model"]
    else:
        lines += [f"model = {auto}.from_pretrained(model_dir{trust})"]
    return "\n".join(lines + example)


def task_model_kwargs(task) -> dict:
    """The head's from_pretrained kwargs (classes), with JSON-style keys so the snippet reads plainly."""
    return {k: ({str(i): n for i, n in v.items()} if k == "id2label" else v) for k, v in task.model_kwargs().items()}


def _what(task, method, record: TrainRecord | None, base: str) -> str:
    what = f"Fine-tuned with ftpipe for the {_md(task.name)} task ({task.type}"
    labels = getattr(task, "labels", None)
    what += f", classes: {', '.join(_md(label) for label in labels)})" if labels else ")"
    what += f" from {_md(base)}"
    source = record.base_model if record else {}
    if source.get("source") not in (None, "hub"):
        what += f" (source: {source.get('source')}"
        what += f", commit {source['commit']})" if source.get("commit") else ")"
    elif source.get("commit"):
        what += f" at commit `{source['commit']}`"
    settings = {k: v for k, v in method.items() if k not in ("name", "type", "tasks", "merged_from") and v not in ({}, [], None)}
    what += f". Method: `{method.get('name')}` (type {method.get('type')})" + (f" with {json.dumps(settings)}" if settings else "")
    merged = method.get("merged_from")
    if merged:
        what += f"; the {merged} adapter is merged into the base weights"
    if record is not None:
        what += (f". Trainable parameters: {record.trainable_params:,} of {record.total_params:,} "
                 f"({100 * record.trainable_fraction:.2f}%)")
    return what + "."


def _data() -> dict:
    """The dataset, from params.yaml's `data` section (train does not declare it: the data it
    describes reaches train as data/subset, which is a dependency)."""
    try:
        from ftpipe.params import load_params

        cfg = load_params("data").data
    except Exception:  # a card without a data line is still a card
        return {}
    if cfg.source == "hub":
        return {"datasets": [cfg.hub_path], "text": f"Hub dataset `{cfg.hub_path}`" + (f" (revision `{cfg.revision}`)" if cfg.revision else "")}
    if cfg.source == "local":
        return {"text": "local files: " + ", ".join(f"`{Path(p).name}` ({split})" for split, paths in cfg.files.items() for p in paths)}
    return {"text": f"ftpipe's synthetic {cfg.synthetic.get('kind', 'reviews')} ({json.dumps(cfg.synthetic)})"}


def _data_lines(data: dict, run) -> list[str]:
    lines = [f"- dataset: {data['text']}"] if data.get("text") else []
    if run is not None and getattr(run, "train_set", None) is not None:
        lines.append(f"- training rows: {len(run.train_set):,}" + (f" (plus {len(run.eval_set):,} held out for validation)"
                                                                 if getattr(run, "eval_set", None) is not None else ""))
    return lines or ["- not recorded"]


def _training_lines(record: TrainRecord | None) -> list[str]:
    if record is None:
        return [f"Not recorded (no {TrainRecord.FILENAME} beside the model)."]
    rows = [(f"train.{k}", v) for k, v in record.train.items() if not (k == "max_steps" and v <= 0)]
    for key in ("effective_batch", "precision", "processes", "train_loss", "epoch", "best_step", "stopped_early"):
        if getattr(record, key) is not None:
            rows.append((key, getattr(record, key)))
    return ["| setting | value |", "|---|---|"] + [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows]


def _reproduce_lines(record: TrainRecord | None, ran: RunRecord | None) -> list[str]:
    commit, exp = (ran.git_commit, ran.dvc_exp_name) if ran else (None, None)
    lines = ["```bash", f"git checkout {commit or '<the commit whose dvc.lock lists this model>'}",
             "bash scripts/setup.sh && . .venv/bin/activate"]
    lines += [f"dvc exp apply {exp}  # the experiment's params (after `dvc exp pull origin {exp}`)"] if exp else []
    lines += ["dvc repro train", "```"]
    if ran and ran.git_dirty:
        lines.append("The working tree had uncommitted changes to code or config when this model was trained.")
    versions = record.versions if record else {}
    if versions:
        lines.append("Trained with " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".")
    return lines

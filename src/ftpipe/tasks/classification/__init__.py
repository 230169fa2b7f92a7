"""Single-label text classification (Yelp stars, tweet sentiment, synthetic reviews).

Works with encoders (BERT) and with decoders used as classifiers (GPT-2, SmolLM2): those pool the
last non-pad token, so the pad token must be set and known to the model config.
"""

from __future__ import annotations

import copy
import csv
from dataclasses import dataclass, field
from pathlib import Path

from ftpipe.core.errors import check, listed
from ftpipe.tasks.base import RecordError, TaskConfig, load_metric, record_id, visible
from ftpipe.tasks.base import Task as BaseTask


@dataclass
class Config(TaskConfig):
    text_field: str = "text"
    label_field: str = "label"
    labels: list[str] = field(default_factory=list)  # class names, in class-id order
    label_aliases: dict[str, int] = field(default_factory=dict)  # other spellings -> class id
    unescape_newlines: bool = False  # Yelp stores line breaks as a literal backslash-n

    def __post_init__(self):
        super().__post_init__()
        check("task.labels", len(self.labels) >= 2, "list at least two class names")
        seen: dict[str, str] = {}
        for name in self.labels:  # label_id matches names ignoring case: "Pos" and "pos" would be one class
            first = seen.get(str(name).lower())
            check("task.labels", first is None, f"class name '{name}' is listed twice"
                  + (f" (as '{first}': labels match ignoring case)" if first != name else ""))
            seen[str(name).lower()] = name
        for alias, idx in self.label_aliases.items():
            check(f"task.label_aliases.{alias}", 0 <= idx < len(self.labels), f"class id {idx} out of range")


EXAMPLE = "The food was great but the service was painfully slow."  # the model card's example input


class Task(BaseTask):
    auto_class = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    input_fields = ("text",)
    stratify_column = "labels"
    head_keys = ("classifier.", "pre_classifier.", "score.")
    hub_pipeline_tag = "text-classification"
    hub_metrics = ("accuracy", "f1")

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.names = {name.lower(): idx for idx, name in enumerate(cfg.labels)}
        self.names.update({alias.lower(): idx for alias, idx in cfg.label_aliases.items()})

    # --- preprocess -------------------------------------------------------------
    def clean(self, record: dict, data_cfg) -> dict:
        text, label = self.cfg.text_field, self.cfg.label_field
        for key in (text, label):
            if key not in record:
                raise RecordError(key, f"missing (columns: {listed(record)}; map them with data.columns)")
        value = record[text]
        if not visible(value):
            raise RecordError(text, "empty or missing text")
        if self.cfg.unescape_newlines:
            value = value.replace("\\n", "\n").replace('\\"', '"')
        return {"id": record_id(record), "text": value.strip(), "label": self.label_id(record[label], data_cfg.label_offset)}

    def label_id(self, raw, offset: int) -> int:
        """Class id from a label name, an alias, or an integer (minus data.label_offset)."""
        if isinstance(raw, bool) or raw is None:
            raise RecordError(self.cfg.label_field, f"missing or invalid label {raw!r}")
        key = str(raw).strip()
        if key.lower() in self.names:
            return self.names[key.lower()]
        try:
            number = float(key)
        except ValueError:
            raise RecordError(self.cfg.label_field, f"unknown label {key!r} (known: {', '.join(self.cfg.labels)})") from None
        if not number.is_integer() or not 0 <= number - offset < len(self.cfg.labels):
            lo, hi = offset, offset + len(self.cfg.labels) - 1
            raise RecordError(self.cfg.label_field, f"label {key!r} out of range {lo}..{hi} (set data.label_offset if labels count from 1)")
        return int(number) - offset

    # --- tokenize ---------------------------------------------------------------
    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        # Only input_ids are stored: no padding here (the collator pads each batch to its own longest
        # row and builds the attention mask), and a single text needs no token_type_ids.
        encode_ids = input_ids_encoder(tokenizer, self.cfg.max_length)

        def encode(batch):
            return {"input_ids": encode_ids(batch["text"]), "labels": batch["label"]}

        return dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=["text", "label"])

    def model_kwargs(self):
        return {
            "num_labels": len(self.cfg.labels),
            "id2label": dict(enumerate(self.cfg.labels)),
            "label2id": {name: idx for idx, name in enumerate(self.cfg.labels)},
        }

    # --- inference --------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        import numpy as np

        from ftpipe.inference import logits

        scores = logits(model, self.collator(tokenizer), features, cfg.batch_size, cfg.sort_by_length)
        # One feature per example: in order when they are the same rows, else by id (a subset of them).
        if len(examples) == len(features):
            texts = examples["text"]
        else:
            by_id = dict(zip(examples["id"], examples["text"]))
            texts = [by_id[i] for i in features["id"]]
        names = self.cfg.labels
        out = []
        # The class from the logits themselves: a fresh head's are close enough that softmax in
        # float32 can tie them. Probabilities in float64, for the output only.
        shifted = np.exp(scores.astype(np.float64) - scores.max(axis=-1, keepdims=True))
        for example_id, text, row_scores, p in zip(features["id"], texts, scores, shifted / shifted.sum(axis=-1, keepdims=True)):
            best = int(row_scores.argmax())
            out.append({"id": example_id, "text": text, "prediction": names[best], "probability": float(p[best]),
                        "probabilities": {name: float(v) for name, v in zip(names, p)}})
        return out

    def predict(self, model, tokenizer, features, examples, cfg):
        rows = self.infer(model, tokenizer, features, examples, cfg)
        return [{"id": row["id"], "input": row["text"], "reference": self.cfg.labels[label], "prediction": row["prediction"],
                 "score": float(row["prediction"] == self.cfg.labels[label])} for row, label in zip(rows, features["labels"])]

    @property
    def cli_field(self):
        return self.cfg.text_field

    def prediction_record(self, record):
        if self.cfg.text_field in record:
            return {**record, self.cfg.label_field: 0}  # no label needed: any valid one, never used
        return record

    def card_example(self, adapter):
        # A tuned adapter merged into a decoder must still know its pad token to pool the last real token.
        pad = ["model.config.pad_token_id = tokenizer.pad_token_id"] if adapter else []
        return ["from transformers import pipeline"], pad + [
            'classify = pipeline("text-classification", model=model, tokenizer=tokenizer)',
            f'print(classify("{EXAMPLE}", top_k=None))']

    def metrics(self, rows):
        ids = {name: idx for idx, name in enumerate(self.cfg.labels)}
        return load_metric(Path(__file__).with_name("class_scores.py")).compute(
            predictions=[ids[row["prediction"]] for row in rows],
            references=[ids[row["reference"]] for row in rows],
            labels=list(range(len(self.cfg.labels))),
            label_names=self.cfg.labels,
        )

    def example_stats(self, rows):
        import numpy as np

        from ftpipe.tasks.base import ratio

        ids = {name: idx for idx, name in enumerate(self.cfg.labels)}
        k = len(ids)
        reference = np.eye(k)[[ids[r["reference"]] for r in rows]].reshape(-1, k)
        predicted = np.eye(k)[[ids[r["prediction"]] for r in rows]].reshape(-1, k)
        stats = np.column_stack([(reference * predicted).sum(1), reference * predicted, predicted, reference])

        def to_metrics(sums, n):  # accuracy, and macro-F1 over every class (F1 = 2 TP / (predicted + true))
            tp, pred, true = sums[..., 1:1 + k], sums[..., 1 + k:1 + 2 * k], sums[..., 1 + 2 * k:]
            return {"accuracy": sums[..., 0] / n, "macro_f1": ratio(2 * tp, pred + true).mean(-1)}

        return stats, to_metrics

    def write_plots(self, rows, out_dir: Path):
        # dvc plots' confusion template reads one row per example.
        with open(out_dir / "confusion.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["actual", "predicted"])
            writer.writerows((row["reference"], row["prediction"]) for row in rows)
        write_per_class(rows, self.cfg.labels, out_dir / "per_class.csv")


# `dvc plots` definitions for this task type (the `plot_specs` slots of dvc.yaml, filled by
# src/hydra_plugins from task.type): the tuned and base confusion matrices, recall per class.
PLOTS = [
    {"confusion_tuned": {"template": "confusion", "x": "actual", "y": {"plots/tuned/confusion.csv": "predicted"},
                         "title": "Tuned model: confusion matrix"}},
    {"confusion_base": {"template": "confusion", "x": "actual", "y": {"plots/base/confusion.csv": "predicted"},
                        "title": "Base model: confusion matrix"}},
    {"recall_by_class": {"template": "bar_horizontal", "x": "recall",
                         "y": {"plots/base/per_class.csv": "class", "plots/tuned/per_class.csv": "class"},
                         "title": "Recall by class (0-1), base and tuned"}},
]


def write_per_class(rows, labels: list[str], path: Path) -> None:
    """Precision, recall and support per class, as fractions in [0, 1]."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class", "precision", "recall", "support"])
        for name in labels:
            support = sum(r["reference"] == name for r in rows)
            predicted = sum(r["prediction"] == name for r in rows)
            hits = sum(r["reference"] == name == r["prediction"] for r in rows)
            writer.writerow([name, round(hits / predicted, 6) if predicted else 0.0, round(hits / support, 6) if support else 0.0, support])


def input_ids_encoder(tokenizer, max_length: int):
    """A function texts -> input_ids, equal to `tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]`.

    Written out because transformers' call always has the Rust backend compute character offsets
    (and masks) that classification never uses; the backend's `encode_batch_fast` skips them, which
    buys 1.3x the rows/s through `datasets.map` (benchmarks/README.md). tests/test_classification.py
    checks the two agree.
    """
    if not tokenizer.is_fast:
        return lambda texts: tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    backend = copy.deepcopy(tokenizer.backend_tokenizer)  # the tokenizer's own stays as transformers set it
    backend.no_padding()
    backend.enable_truncation(max_length, direction=tokenizer.truncation_side)
    return lambda texts: [encoding.ids for encoding in backend.encode_batch_fast(texts)]

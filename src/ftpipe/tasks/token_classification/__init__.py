"""Token classification: named entities and tagged spans, scored by entity-level F1 (seqeval's rules).

Inputs: CoNLL-style column files (.conll, .iob, .txt: token first, label last, a blank line between
sentences), or records (CSV, JSON, JSONL, Parquet) with a list of tokens and a list of tags, the
tags as names or ids. Tags in IOB2, IOB1 or BIOES (`task.scheme`) are stored as IOB2 ids: O, then
B- and I- per type of `task.labels`.

Tokenize joins a sentence's words with spaces and labels the first sub-token of each word (the
rest are ignored, or labelled too with `label_all_tokens`), with word-piece encoders and byte-level
BPE decoders alike: sub-tokens are tied to words by their character offsets. A sentence longer
than `max_length` becomes windows overlapping by `stride` tokens; evaluation takes each word's tag
from the window where it has the most context on both sides.
"""

from __future__ import annotations

import csv
import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from ftpipe.core.errors import ConfigError, check, listed
from ftpipe.core.io import read_records
from ftpipe.tasks.base import RecordError, TaskConfig, load_metric, record_id, visible
from ftpipe.tasks.base import Task as BaseTask
from ftpipe.tasks.token_classification.conll import SUFFIXES, read_conll
from ftpipe.tasks.token_classification.synthetic import entities as synthetic_entities
from ftpipe.tasks.token_classification.tags import SCHEMES, describe, entity_spans, tag_names, to_iob2, words

IGNORED = -100  # the label PyTorch's cross-entropy skips
EXAMPLE = "Anna Berg flew from Lisbon to Oslo to meet the board of Acme Corp."  # the model card's


@dataclass
class Config(TaskConfig):
    max_length: int = 128  # tokens per window
    labels: list[str] = field(default_factory=list)  # entity types; the tags are O, B-<type> and I-<type>
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    text_field: str = "text"  # raw text to predict on (ftpipe-predict --text): split into words first
    scheme: str = "iob2"  # the input's tags: iob2 | iob1 | bioes
    repair_tags: bool = False  # IOB2: an I- tag that starts an entity becomes B- (counted) instead of an error
    label_all_tokens: bool = False  # also train on a word's later sub-tokens (as I-), not only its first
    stride: int = 32  # tokens shared by consecutive windows of a long sentence
    mode: str = "default"  # entity rules for the metrics and predicted entities: default | strict

    def __post_init__(self):
        super().__post_init__()
        check("task.labels", len(self.labels) >= 1, "list at least one entity type")
        check("task.labels", len(set(self.labels)) == len(self.labels), "lists an entity type twice")
        for name in self.labels:
            check("task.labels", isinstance(name, str) and bool(re.fullmatch(r"(?![BIESO]-)[^\s]+", name)) and name != "O",
                  f"{name!r} is not an entity type (a name without spaces, not O, no B-/I- prefix)")
        check("task.scheme", self.scheme in SCHEMES, f"unknown scheme '{self.scheme}' ({', '.join(SCHEMES)})")
        check("task.mode", self.mode in ("default", "strict"), f"unknown mode '{self.mode}' (default or strict)")
        check("task.stride", 0 <= self.stride <= self.max_length // 2, f"must be in 0..{self.max_length // 2} (half of task.max_length)")


class Task(BaseTask):
    auto_class = "AutoModelForTokenClassification"
    peft_task_type = "TOKEN_CLS"
    input_fields = ("tokens",)
    group_column = "example_id"  # a long sentence's windows
    head_keys = ("classifier.", "score.")
    hub_pipeline_tag = "token-classification"
    hub_metrics = ("seqeval",)
    file_suffixes = (*BaseTask.file_suffixes, *SUFFIXES)  # CoNLL-style files too (read_conll)

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.tags = tag_names(cfg.labels)
        self.ids = {tag: i for i, tag in enumerate(self.tags)}

    # --- preprocess -------------------------------------------------------------
    def read(self, path, columns):
        if Path(path).suffix.lower() in SUFFIXES:
            return read_conll(Path(path), self.cfg.tokens_field, self.cfg.tags_field)
        return read_records(path, columns)

    def clean(self, record, data_cfg):
        cfg = self.cfg
        for key in (cfg.tokens_field, cfg.tags_field):
            if key not in record:
                raise RecordError(key, f"missing (columns: {listed(record)}; map them with data.columns)")
        tokens, tags = _as_list(record[cfg.tokens_field], cfg.tokens_field), _as_list(record[cfg.tags_field], cfg.tags_field)
        if not tokens:
            raise RecordError(cfg.tokens_field, "empty sentence (no tokens)")
        line = record.get("_line")  # CoNLL: the line of the first token
        where = lambda i: f"token {i + 1} ({tokens[i]!r}{f', line {line + i}' if line else ''})"  # noqa: E731
        for i, token in enumerate(tokens):
            # A token of only spaces or invisible characters (a zero-width space) gets no sub-token from the
            # tokenizer: its tag would never be trained or scored.
            if not visible(token):
                raise RecordError(cfg.tokens_field, f"token {i + 1} is empty, invisible or not a string ({token!r})")
        if len(tags) != len(tokens):
            raise RecordError(cfg.tags_field, f"{len(tokens)} tokens but {len(tags)} tags")
        self.stats["tags_repaired"] += 0  # the key shows in the metrics even when nothing was repaired
        row = {"id": record_id(record), "tokens": [t.strip() for t in tokens],
               "tags": to_iob2(tags, self.ids, cfg.scheme, cfg.repair_tags, self.stats, where, cfg.tags_field)}
        if "_starts" in record:  # raw text to predict on: entities are given in its own offsets
            row.update(text=record[cfg.text_field], starts=record["_starts"])
        return row

    # --- tokenize ---------------------------------------------------------------
    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        """Windows of each sentence; every window keeps `example_id` (subsets take whole sentences) and
        its labels; evaluation windows also keep `word_ids`, the word each labelled sub-token starts."""
        cfg = self.cfg
        if not tokenizer.is_fast:
            raise ConfigError("model", "token classification needs a fast tokenizer (it ties sub-tokens to words by their offsets)")
        training = split == "train"

        def encode(batch):
            enc = tokenizer([" ".join(t) for t in batch["tokens"]], truncation=True, max_length=cfg.max_length,
                            stride=cfg.stride, return_overflowing_tokens=True, return_offsets_mapping=True)
            owner = enc.pop("overflow_to_sample_mapping")
            out = {"input_ids": enc["input_ids"], "example_id": [batch["id"][i] for i in owner], "labels": []}
            if not training:
                out["word_ids"] = []
            for f, i in enumerate(owner):
                labels, word_ids = self._align(word_of_tokens(enc["offset_mapping"][f], batch["tokens"][i]), batch["tags"][i])
                out["labels"].append(labels)
                if not training:
                    out["word_ids"].append(word_ids)
            return out

        return dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=dataset.column_names)

    def _align(self, token_words: list[int], tags: list[int]) -> tuple[list[int], list[int]]:
        """Per sub-token: its label, and the word it starts (-1: a later piece of a word, or a special token)."""
        labels, starts, previous = [], [], -1
        for w in token_words:
            first = w >= 0 and w != previous
            starts.append(w if first else -1)
            if first:
                labels.append(tags[w])
            elif w >= 0 and self.cfg.label_all_tokens:
                labels.append(tags[w] + (tags[w] % 2))  # B-X (odd id) -> I-X, the next id
            else:
                labels.append(IGNORED)
            previous = w
        return labels, starts

    def model_kwargs(self):
        return {"num_labels": len(self.tags), "id2label": dict(enumerate(self.tags)), "label2id": dict(self.ids)}

    def collator(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    # --- inference --------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        return [self._entities(row, tags, scores) for row, tags, scores in self._word_tags(model, tokenizer, features, examples, cfg)]

    def predict(self, model, tokenizer, features, examples, cfg):
        from ftpipe.tasks.token_classification.entities import score

        rows = []
        for row, tags, scores in self._word_tags(model, tokenizer, features, examples, cfg):
            out = self._entities(row, tags, scores)
            reference = [self.tags[t] for t in row["tags"]]
            truth = entity_spans(reference, _spans(row), _text(row), strict=self.cfg.mode == "strict")
            both_empty = not truth and not out["entities"]
            rows.append({"id": row["id"], "input": out["text"], "reference": describe(truth), "prediction": out["prediction"],
                         "entities": out["entities"], "reference_tags": reference, "predicted_tags": tags,
                         "score": 1.0 if both_empty else score([tags], [reference], self.cfg.mode)["f1"]})
        return rows

    def _word_tags(self, model, tokenizer, features, examples, cfg):
        """(example row, a tag name per word, its probability) for each example that has windows."""
        import numpy as np

        from ftpipe.inference import batched, model_inputs

        def step(model, batch, chunk):
            logits = model(**batch).logits.float().cpu().numpy()
            return [row[:len(r["input_ids"])] for row, r in zip(logits, chunk)]

        logits = batched(model, model_inputs(features), self.collator(tokenizer), step, cfg.batch_size, cfg.sort_by_length)
        best: dict[str, dict[int, tuple[int, int, float]]] = {}  # example -> word -> (context, tag id, probability)
        for example_id, word_ids, scores in zip(features["example_id"], features["word_ids"], logits):
            shifted = np.exp(scores.astype(np.float64) - scores.max(axis=-1, keepdims=True))
            probs = shifted / shifted.sum(axis=-1, keepdims=True)
            words_seen = best.setdefault(example_id, {})
            for pos, w in enumerate(word_ids):
                context = min(pos, len(word_ids) - 1 - pos)  # tokens on its shorter side, within this window
                if w >= 0 and (w not in words_seen or context > words_seen[w][0]):
                    tag = int(scores[pos].argmax())  # from the logits: a fresh head's softmax can tie in float32
                    words_seen[w] = (context, tag, float(probs[pos, tag]))
        for row in examples:
            if row["id"] in best:
                found = best[row["id"]]
                # A word no sub-token stands for (a character the tokenizer drops) is tagged O.
                picked = [found.get(w, (0, 0, 0.0)) for w in range(len(row["tokens"]))]
                yield row, [self.tags[tag] for _, tag, _ in picked], [p for _, _, p in picked]

    def _entities(self, row, tags, scores) -> dict:
        found = entity_spans(tags, _spans(row), _text(row), scores, strict=self.cfg.mode == "strict")
        return {"id": row["id"], "text": _text(row), "prediction": describe(found), "entities": found}

    # --- ftpipe-predict on new records -------------------------------------------
    @property
    def cli_field(self):
        return self.cfg.text_field

    def prediction_record(self, record):
        cfg = self.cfg
        if cfg.tokens_field not in record and isinstance(record.get(cfg.text_field), str):
            tokens, starts = words(record[cfg.text_field])
            record = {**record, cfg.tokens_field: tokens, "_starts": starts}
        if cfg.tokens_field in record and cfg.tags_field not in record:  # no tags needed: O, never read
            tokens = record[cfg.tokens_field]
            record = {**record, cfg.tags_field: ["O"] * (len(tokens) if isinstance(tokens, list) else len(str(tokens).split()))}
        return record

    def card_example(self, adapter):
        return ["from transformers import pipeline"], [
            'tag = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")',
            f'print(tag("{EXAMPLE}"))']

    # --- metrics ------------------------------------------------------------------
    def metrics(self, rows):
        return load_metric(Path(__file__).with_name("entities.py")).compute(predictions=[r["predicted_tags"] for r in rows],
                                                references=[r["reference_tags"] for r in rows],
                                                mode=self.cfg.mode, types=self.cfg.labels)

    def example_stats(self, rows):
        import numpy as np

        from ftpipe.tasks.token_classification.entities import entities
        from ftpipe.tasks.base import ratio

        strict, types = self.cfg.mode == "strict", self.cfg.labels
        stats = []
        for row in rows:
            truth, found = set(entities(row["reference_tags"], strict)), set(entities(row["predicted_tags"], strict))
            per_type = [[sum(e[0] == t for e in truth & found), sum(e[0] == t for e in found), sum(e[0] == t for e in truth)] for t in types]
            correct = sum(a == b for a, b in zip(row["predicted_tags"], row["reference_tags"]))
            stats.append([len(truth & found), len(found), len(truth), correct, len(row["reference_tags"]), *np.ravel(per_type)])

        def to_metrics(sums, n):
            tp, pred, true = sums[..., 0], sums[..., 1], sums[..., 2]
            by_type = sums[..., 5:].reshape(*sums.shape[:-1], len(types), 3)
            seen = (by_type[..., 1] + by_type[..., 2]) > 0  # macro-F1 averages the types seen, as the metric does
            type_f1 = ratio(2 * by_type[..., 0], by_type[..., 1] + by_type[..., 2])
            return {"f1": ratio(2 * tp, pred + true), "precision": ratio(tp, pred), "recall": ratio(tp, true),
                    "macro_f1": ratio((type_f1 * seen).sum(-1), seen.sum(-1)), "token_accuracy": ratio(sums[..., 3], sums[..., 4])}

        return np.array(stats, dtype=np.float64).reshape(len(rows), 5 + 3 * len(types)), to_metrics

    def write_plots(self, rows, out_dir: Path):
        from ftpipe.tasks.token_classification.entities import entities, score

        per_type = score([r["predicted_tags"] for r in rows], [r["reference_tags"] for r in rows], self.cfg.mode, self.cfg.labels)["per_type"]
        with open(out_dir / "per_type.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["type", "precision", "recall", "f1", "support"])
            writer.writerows([name, round(v["precision"], 6), round(v["recall"], 6), round(v["f1"], 6), v["support"]]
                             for name, v in per_type.items())
        # One row per reference entity (its type, and the type predicted for exactly its span) and per
        # predicted entity no reference has: dvc plots' confusion template reads one row per pair.
        strict = self.cfg.mode == "strict"
        with open(out_dir / "confusion.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["actual", "predicted"])
            for row in rows:
                truth = {(s, e): t for t, s, e in entities(row["reference_tags"], strict)}
                found = {(s, e): t for t, s, e in entities(row["predicted_tags"], strict)}
                writer.writerows((t, found.get(span, NONE)) for span, t in truth.items())
                writer.writerows((NONE, t) for span, t in found.items() if span not in truth)


NONE = "(none)"  # no entity at that span
SYNTHETIC = {"entities": synthetic_entities}  # data.synthetic.kind: entities
# `dvc plots` definitions for this task type (the `plot_specs` slots of dvc.yaml, filled by
# src/hydra_plugins from task.type).
PLOTS = [
    {"f1_by_entity_type": {"template": "bar_horizontal", "x": "f1",
                           "y": {"plots/base/per_type.csv": "type", "plots/tuned/per_type.csv": "type"},
                           "title": "Entity F1 (0-1) by type, base and tuned"}},
    {"entity_confusion_tuned": {"template": "confusion", "x": "actual", "y": {"plots/tuned/confusion.csv": "predicted"},
                                "title": "Tuned model: entity types, reference vs predicted at the same span"}},
    {"entity_confusion_base": {"template": "confusion", "x": "actual", "y": {"plots/base/confusion.csv": "predicted"},
                               "title": "Base model: entity types, reference vs predicted at the same span"}},
]


def word_of_tokens(offsets, tokens: list[str]) -> list[int]:
    """The word (index into `tokens`, joined by single spaces) each sub-token lies in; -1 for special tokens
    and for a piece that is only the space between words (byte-level BPE counts the space into the next word's)."""
    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token) + 1
    out = []
    for start, end in offsets:
        w = bisect_right(starts, start) - 1
        if start == end or w < 0:
            out.append(-1)
            continue
        if start >= starts[w] + len(tokens[w]):  # in the space before word w + 1
            w = w + 1 if w + 1 < len(starts) and end > starts[w + 1] else -1
        out.append(w)
    return out


def _as_list(value, field: str) -> list:
    """A list as records carry it: a list, a JSON list (a CSV cell), or space-separated names."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise RecordError(field, "is not a JSON list") from None
        else:
            value = value.split()
    if hasattr(value, "tolist"):  # Parquet lists arrive as numpy arrays
        value = value.tolist()
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list, got {type(value).__name__}")
    return value


def _text(row) -> str:
    return row["text"] if row.get("text") is not None else " ".join(row["tokens"])


def _spans(row) -> list[tuple[int, int]]:
    """Each word's character span in `_text(row)`: in the raw text it came from, or in the joined words."""
    if row.get("starts") is not None:
        return [(s, s + len(t)) for s, t in zip(row["starts"], row["tokens"])]
    spans, pos = [], 0
    for token in row["tokens"]:
        spans.append((pos, pos + len(token)))
        pos += len(token) + 1
    return spans

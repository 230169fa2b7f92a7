"""Extractive question answering (SQuAD v1.1/v2.0 and files in the same shape).

Inputs: SQuAD nested JSON (data -> paragraphs -> qas -> answers, every article and paragraph),
or flat CSV/JSON/JSONL records with context, question and answers. Fields that annotation tools
add (answer ids, document ids, answer_end, categories) are ignored. `is_impossible` or an empty
answer list marks an unanswerable (v2) question; v1 (task.version_2=false) refuses both.

Preprocess checks each answer_start against its text and repairs it to the nearest occurrence
(counted); long contexts become overlapping windows (max_length / doc_stride) at tokenize, and
evaluation searches the n-best spans over all windows of a question (qa/postprocess.py).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path


from ftpipe.core.errors import check
from ftpipe.core.errors import DataError
from ftpipe.core.io import read_records, read_text
from ftpipe.tasks.base import RecordError, TaskConfig, load_metric, record_id, visible
from ftpipe.tasks.base import Task as BaseTask

SNIPPET = 200  # characters of context shown next to the question in predictions and reports


@dataclass
class Config(TaskConfig):
    max_length: int = 384  # tokens per window (question + context + special tokens)
    doc_stride: int = 128  # tokens shared by consecutive windows of a long context
    n_best: int = 20  # start and end candidates per window in the span search
    max_answer_length: int = 30  # longest answer, in tokens
    version_2: bool = False  # allow "no answer" predictions (SQuAD v2)
    null_threshold: float = 0.0  # v2: answer nothing when null score - best span score > this
    context_field: str = "context"
    question_field: str = "question"
    answers_field: str = "answers"

    def __post_init__(self):
        super().__post_init__()
        check("task.max_length", self.max_length >= 32, "must be >= 32")
        check("task.doc_stride", 0 < self.doc_stride < self.max_length, "must be > 0 and < task.max_length")
        check("task.n_best", self.n_best >= 1, "must be >= 1")
        check("task.max_answer_length", self.max_answer_length >= 1, "must be >= 1")


# The answers of a record to predict on: none, and no reference either (no file's JSON holds a tuple).
NO_REFERENCE = ()
EXAMPLE = ("What is the capital of Norland?", "Norland is a small country in the north. Its capital is Vesta.")  # the card's


class Task(BaseTask):
    auto_class = "AutoModelForQuestionAnswering"
    peft_task_type = "QUESTION_ANS"
    input_fields = ("context", "question")
    group_column = "example_id"  # a question's windows
    head_keys = ("qa_outputs.",)
    hub_pipeline_tag = "question-answering"
    hub_metrics = ("exact_match", "f1")
    score_scale = "exact match and F1 on a 0-100 scale"
    headline_metric = "f1"  # on a 0-100 scale, as the official SQuAD script reports it
    metric_scale = "0-100"

    # --- preprocess -------------------------------------------------------------
    def read(self, path: Path, columns: dict[str, str]):
        """SQuAD nested JSON question by question; anything else as flat records."""
        path = Path(path)
        if path.suffix.lower() != ".json":
            return read_records(path, columns)
        try:
            data = json.loads(read_text(path))
        except UnicodeDecodeError as err:
            raise DataError(path, f"not valid UTF-8 (byte {err.start})") from None
        except json.JSONDecodeError as err:
            raise DataError(path, f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
        articles = data.get("data") if isinstance(data, dict) else None
        if not (isinstance(articles, list) and articles and isinstance(articles[0], dict) and "paragraphs" in articles[0]):
            return read_records(path, columns)
        return self._read_squad(path, articles)

    def _read_squad(self, path: Path, articles: list):
        number = 0
        for a, article in enumerate(articles, start=1):
            paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
            if not isinstance(paragraphs, list):
                raise DataError(path, f"article {a} has no 'paragraphs' list")
            for p, paragraph in enumerate(paragraphs, start=1):
                if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                    raise DataError(path, f"article {a} paragraph {p} has no 'qas' list")
                for qa in paragraph["qas"]:
                    number += 1
                    if not isinstance(qa, dict):
                        raise DataError(path, f"expected an object (article {a} paragraph {p})", record=number)
                    yield number, {**qa, "context": paragraph.get("context"), "title": article.get("title", "")}

    def clean(self, record: dict, data_cfg) -> dict:
        cfg = self.cfg
        qid = record_id(record)
        label = f"question {qid!r}" if qid else "question"
        context, question = record.get(cfg.context_field), record.get(cfg.question_field)
        if not visible(context):
            raise RecordError(cfg.context_field, f"{label}: empty or missing context")
        if not visible(question):
            raise RecordError(cfg.question_field, f"{label}: empty or missing question")
        field, impossible = cfg.answers_field, _truthy(record.get("is_impossible"))
        allow = "SQuAD v1 has no unanswerable questions; task.version_2=true allows them"
        if impossible and not cfg.version_2:
            raise RecordError(field, f"{label}: is_impossible is true ({allow})")
        answers = self._answers(record, label)
        if impossible and answers:  # v2 keeps an impossible question's guesses in plausible_answers, not answers
            raise RecordError(field, f"{label}: is_impossible is true but it has {len(answers)} answer(s) (drop them or the flag)")
        if not answers and not cfg.version_2 and record.get(field) is not NO_REFERENCE:  # once trained as "no answer"
            raise RecordError(field, f"{label}: no answer (answers is empty or blank; {allow})")
        texts, starts = [], []
        for text, start in answers:
            start = self._check_span(context, text, start, label)
            texts.append(text)
            starts.append(start)
        self.stats["unanswerable"] += not texts  # += False still records the key: 0 shows in the metrics
        self.stats["answer_start_repaired"] += 0
        return {"id": qid, "context": context, "question": question.strip(), "answer_text": texts, "answer_start": starts}

    def _answers(self, record: dict, label: str) -> list[tuple[str, int | None]]:
        """(text, answer_start) pairs from the answer formats seen in the wild."""
        field = self.cfg.answers_field
        raw = record.get(field)
        if raw is None and ("answer" in record or "answer_text" in record):  # flat: one answer per row
            raw = [{"text": record.get("answer", record.get("answer_text")), "answer_start": record.get("answer_start")}]
        if raw is NO_REFERENCE:
            return []
        if isinstance(raw, str):  # CSV cells hold JSON
            try:
                raw = json.loads(raw) if raw.strip() else []
            except json.JSONDecodeError:
                raise RecordError(field, f"{label}: answers is not JSON") from None
        if raw is None:
            if not self.cfg.version_2:  # v1 has no unanswerable questions: a missing key is a broken record
                raise RecordError(field, f"{label}: missing answers (SQuAD v1 questions all have one; "
                                        "task.version_2=true allows unanswerable ones)")
            return []
        if isinstance(raw, dict):  # Hugging Face style: {"text": [...], "answer_start": [...]}
            texts, starts = raw.get("text") or [], raw.get("answer_start") or []
            if isinstance(texts, str):
                texts, starts = [texts], [starts]
            raw = [{"text": t, "answer_start": s} for t, s in zip(texts, list(starts) + [None] * len(texts))]
        if not isinstance(raw, list):
            raise RecordError(field, f"{label}: expected a list of answers, got {type(raw).__name__}")
        out = []
        for answer in raw:
            if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
                raise RecordError(field, f"{label}: each answer needs a 'text' string")
            if not answer["text"].strip():
                continue
            start = answer.get("answer_start")
            if isinstance(start, bool) or isinstance(start, float) and not start.is_integer():  # int() made 12.7 12, true 1
                raise RecordError(f"{field}.answer_start", f"{label}: answer_start {start!r} is not a whole number")
            try:
                start = None if start is None or start == "" else int(start)
            except (TypeError, ValueError):
                raise RecordError(f"{field}.answer_start", f"{label}: answer_start {start!r} is not a number") from None
            if start is not None and start < 0:  # Python's negative slicing would let it pass the span check
                raise RecordError(f"{field}.answer_start", f"{label}: answer_start {start} is negative")
            out.append((answer["text"], start))
        return out

    def _check_span(self, context: str, text: str, start: int | None, label: str) -> int:
        """answer_start, repaired to the nearest occurrence of the text when it does not point at it."""
        if start is not None and context[start:start + len(text)] == text:
            return start
        found = [i for i in _occurrences(context, text)]
        if not found:
            raise RecordError(f"{self.cfg.answers_field}.text", f"{label}: answer {text!r} does not occur in the context")
        self.stats["answer_start_repaired"] += 1
        return min(found, key=lambda i: abs(i - (start or 0)))

    # --- tokenize ---------------------------------------------------------------
    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        """Overlapping windows per question. Train windows carry start/end token positions
        (CLS when the answer is not inside); eval windows carry context offsets for post-processing.
        Both keep `example_id`, so subsets draw whole questions."""
        cfg = self.cfg
        training = split == "train"

        def encode(batch):
            enc = tokenizer(
                batch["question"], batch["context"], truncation="only_second", max_length=cfg.max_length,
                stride=cfg.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
            )
            owner = enc.pop("overflow_to_sample_mapping")
            offsets = enc.pop("offset_mapping")
            enc["example_id"] = [batch["id"][i] for i in owner]
            if training:
                enc["start_positions"], enc["end_positions"] = [], []
                for f, i in enumerate(owner):
                    start, end = _token_span(enc.sequence_ids(f), offsets[f], batch["answer_text"][i], batch["answer_start"][i])
                    enc["start_positions"].append(start)
                    enc["end_positions"].append(end)
            else:
                # Only context tokens keep offsets: the span search never picks question tokens.
                enc["offset_mapping"] = [
                    [o if s == 1 else None for o, s in zip(offsets[f], enc.sequence_ids(f))] for f in range(len(owner))
                ]
            return enc

        return dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=dataset.column_names)

    # --- evaluate ---------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        chosen, answers = self._best_spans(model, tokenizer, features, examples, cfg)
        return [{"id": row["id"], "question": row["question"], "prediction": answers[row["id"]]["text"],
                 "start": answers[row["id"]]["start"], "probability": answers[row["id"]]["probability"]} for row in chosen]

    def predict(self, model, tokenizer, features, examples, cfg):
        from ftpipe.tasks.qa.squad import question_scores

        chosen, answers = self._best_spans(model, tokenizer, features, examples, cfg)
        rows = []
        for row in chosen:
            answer = answers[row["id"]]
            em, f1 = question_scores(answer["text"], row["answer_text"])
            context = " ".join(row["context"].split())
            rows.append({
                "id": row["id"],
                "input": f"{row['question']} | {context[:SNIPPET]}{'...' if len(context) > SNIPPET else ''}",
                "reference": row["answer_text"][0] if row["answer_text"] else "",
                "answers": row["answer_text"],
                "prediction": answer["text"],
                "start": answer["start"],
                "probability": answer["probability"],
                "exact_match": em,
                "score": f1,  # per-question F1 in [0, 1]: what compare ranks fixed/broken by
            })
        return rows

    def _best_spans(self, model, tokenizer, features, examples, cfg):
        """The examples that have windows, and each one's best answer over all its windows."""
        from ftpipe.tasks.qa.postprocess import postprocess

        start_logits, end_logits = qa_logits(model, self.collator(tokenizer), features, cfg.batch_size, cfg.sort_by_length)
        wanted = set(features["example_id"])
        chosen = examples.filter(lambda ids: [i in wanted for i in ids], input_columns="id", batched=True)
        answers = postprocess(
            chosen["id"], dict(zip(chosen["id"], chosen["context"])), features["example_id"], start_logits, end_logits,
            features["offset_mapping"], self.cfg.n_best, self.cfg.max_answer_length, self.cfg.version_2, self.cfg.null_threshold,
        )
        return chosen, answers

    def prediction_record(self, record):
        return {self.cfg.answers_field: NO_REFERENCE, **record}  # none needed, even in v1

    def card_example(self, adapter):
        # transformers v5 has no question-answering pipeline: the best span of one window, by hand.
        return ["import torch"], [
            f'question, context = "{EXAMPLE[0]}", "{EXAMPLE[1]}"',
            'inputs = tokenizer(question, context, truncation="only_second", return_offsets_mapping=True, return_tensors="pt")',
            'offsets = inputs.pop("offset_mapping")[0]',
            "with torch.no_grad():",
            "    out = model(**inputs)",
            "in_context = [i for i, s in enumerate(inputs.sequence_ids(0)) if s == 1]",
            "start = max(in_context, key=lambda i: out.start_logits[0, i])",
            "end = max((i for i in in_context if i >= start), key=lambda i: out.end_logits[0, i])",
            "print(context[offsets[start][0]:offsets[end][1]])"]

    def metrics(self, rows):
        return load_metric(Path(__file__).with_name("squad.py")).compute(predictions=[r["prediction"] for r in rows], references=[r["answers"] for r in rows])

    def example_stats(self, rows):
        import numpy as np

        stats = np.array([[r["exact_match"], r["score"]] for r in rows], dtype=np.float64)
        return stats, lambda sums, n: {"exact_match": 100 * sums[..., 0] / n, "f1": 100 * sums[..., 1] / n}

    def write_plots(self, rows, out_dir):
        # Exact match and F1 (0-100, the scale of the QA metrics) by the length of the reference
        # answer and by the question's wh-word: where the model gets better or worse with tuning.
        write_groups(rows, answer_length, "answer_words", out_dir / "by_answer_length.csv")
        write_groups(rows, question_type, "question_type", out_dir / "by_question_type.csv")


# `dvc plots` definitions for this task type (the `plot_specs` slots of dvc.yaml, filled by
# src/hydra_plugins from task.type): base and tuned side by side.
PLOTS = [
    {"f1_by_answer_length": {"template": "bar_horizontal", "x": "f1",
                             "y": {"plots/base/by_answer_length.csv": "answer_words", "plots/tuned/by_answer_length.csv": "answer_words"},
                             "title": "F1 (0-100) by reference answer length in words, base and tuned"}},
    {"f1_by_question_type": {"template": "bar_horizontal", "x": "f1",
                             "y": {"plots/base/by_question_type.csv": "question_type", "plots/tuned/by_question_type.csv": "question_type"},
                             "title": "F1 (0-100) by question type, base and tuned"}},
    {"exact_match_by_answer_length": {"template": "bar_horizontal", "x": "exact_match",
                                      "y": {"plots/base/by_answer_length.csv": "answer_words", "plots/tuned/by_answer_length.csv": "answer_words"},
                                      "title": "Exact match (0-100) by reference answer length in words, base and tuned"}},
]
WH_WORDS = {"what": "what", "which": "which", "who": "who", "whom": "who", "whose": "who", "when": "when",
            "where": "where", "why": "why", "how": "how"}


def answer_length(row) -> str:
    """The shortest reference answer's length in words, bucketed; zero-padded so the buckets sort."""
    if not row["answers"]:
        return "none"
    words = min(len(a.split()) for a in row["answers"])
    return next(label for top, label in ((1, "01"), (2, "02"), (3, "03"), (5, "04-05"), (10, "06-10")) if words <= top) if words <= 10 else "11+"


def question_type(row) -> str:
    question = row["input"].split(" | ", 1)[0].lower()
    return next((WH_WORDS[w] for w in re.findall(r"[a-z]+", question) if w in WH_WORDS), "other")


def write_groups(rows, key, column: str, path: Path) -> None:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([column, "exact_match", "f1", "questions"])
        for name in sorted(groups):
            members = groups[name]
            writer.writerow([name, round(100 * sum(r["exact_match"] for r in members) / len(members), 4),
                             round(100 * sum(r["score"] for r in members) / len(members), 4), len(members)])


def qa_logits(model, collator, features, batch_size: int, sort_by_length: bool):
    """Start and end logits per feature (each trimmed to its own length), in input order."""
    from ftpipe.inference import batched, model_inputs

    def step(model, batch, rows):
        out = model(**batch)
        starts, ends = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
        return [(s[:len(r["input_ids"])], e[:len(r["input_ids"])]) for s, e, r in zip(starts, ends, rows)]

    pairs = batched(model, model_inputs(features), collator, step, batch_size, sort_by_length)
    return [s for s, _ in pairs], [e for _, e in pairs]


def _token_span(sequence_ids, offsets, texts, starts) -> tuple[int, int]:
    """Token positions of the first answer inside this window; (0, 0) = CLS when it is not inside."""
    if not texts:
        return 0, 0
    start_char, end_char = starts[0], starts[0] + len(texts[0])
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    first = next(i for i in context if offsets[i][1] > start_char)
    last = next(i for i in reversed(context) if offsets[i][0] < end_char)
    return first, last


def _occurrences(text: str, sub: str):
    i = text.find(sub)
    while i >= 0:
        yield i
        i = text.find(sub, i + 1)


def _truthy(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")

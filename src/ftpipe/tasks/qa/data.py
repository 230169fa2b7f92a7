"""Question answering's records: SQuAD nested JSON or flat files read, answers checked against their
context and repaired to the nearest occurrence (counted), records to predict on."""

from __future__ import annotations

import json
from pathlib import Path


from ftpipe.core.errors import DataError
from ftpipe.core.io import read_records, read_text
from ftpipe.tasks.base import RecordError, record_id, visible


# The answers of a record to predict on: none, and no reference either (no file's JSON holds a tuple).
NO_REFERENCE = ()


def _truthy(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def _occurrences(text: str, sub: str):
    i = text.find(sub)
    while i >= 0:
        yield i
        i = text.find(sub, i + 1)


class Data:
    """Question answering's data phase (mixed into the Task in __init__)."""

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

    @property
    def cli_inputs(self):
        return {"context": self.cfg.context_field, "question": self.cfg.question_field}

    def prediction_record(self, record):
        return {self.cfg.answers_field: NO_REFERENCE, **record}  # none needed, even in v1

"""Question answering's report: exact match and F1 (squad.py), per-example statistics for the bootstrap,
scores by answer length and question type for `dvc plots`, and the model card's example."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ftpipe.tasks.base import Plot, load_metric

EXAMPLE = ("What is the capital of Norland?", "Norland is a small country in the north. Its capital is Vesta.")  # the card's


# `dvc plots` of this task type (dvc.yaml's `plot_specs` slots, filled from task.type by src/hydra_plugins).
PLOTS = [
    Plot("f1_by_answer_length", "by_answer_length.csv", "f1", "answer_words", "bar_horizontal",
         "F1 (0-100) by reference answer length in words, base and tuned"),
    Plot("f1_by_question_type", "by_question_type.csv", "f1", "question_type", "bar_horizontal",
         "F1 (0-100) by question type, base and tuned"),
    Plot("exact_match_by_answer_length", "by_answer_length.csv", "exact_match", "answer_words", "bar_horizontal",
         "Exact match (0-100) by reference answer length in words, base and tuned"),
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


class Report:
    """Question answering's report phase (mixed into the Task in __init__)."""

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

"""Chat's per-answer scores against the reference turn(s), best over references: token F1 and exact match after
SQuAD's normalisation (lower case, no punctuation or articles, single spaces), and ROUGE-L (rouge_score)."""

from __future__ import annotations

import logging
import re
import string
from collections import Counter

logging.getLogger("absl").setLevel(logging.WARNING)  # rouge_score logs a line per scorer
_PUNCTUATION = set(string.punctuation)


def normalise(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    predicted, wanted = normalise(prediction).split(), normalise(reference).split()
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def example_scores(prediction: str, references: list[str]) -> dict:
    """token_f1, exact_match and rougeL (each 0-1), each the best over the references."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return {"token_f1": max(token_f1(prediction, ref) for ref in references),
            "exact_match": max(float(normalise(prediction) == normalise(ref)) for ref in references),
            "rougeL": max(scorer.score(ref, prediction)["rougeL"].fmeasure for ref in references)}

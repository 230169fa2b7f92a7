"""SQuAD exact match and F1 with the official answer normalization (v1.1), plus v2's HasAns/NoAns split.

Written from the official definitions: lower-case, drop punctuation, drop the articles a/an/the,
collapse whitespace; F1 is the bag-of-tokens overlap; each question takes its best gold answer.
An unanswerable question (no gold answers) scores 1 only for an empty prediction, as in v2.
"""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = "SQuAD v1.1 exact match and F1 (official normalization); HasAns/NoAns scores when some questions have no answer (v2)."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted answer strings ("" = no answer).
    references: lists of gold answer strings ([] = unanswerable).
Returns:
    exact_match, f1 (0-100) and total; with unanswerable questions also HasAns_* and NoAns_*.
"""

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:  # an empty answer matches only an empty answer
        return float(pred_tokens == gold_tokens)
    common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def question_scores(prediction: str, golds: list) -> tuple:
    """(EM, F1) of one question in [0, 1]: the best over its gold answers ([] = unanswerable)."""
    golds = list(golds) or [""]
    return max(exact_match(prediction, g) for g in golds), max(f1(prediction, g) for g in golds)


def _summary(scores: list) -> dict:
    n = len(scores)
    return {
        "exact_match": 100.0 * sum(em for em, _ in scores) / n if n else 0.0,
        "f1": 100.0 * sum(f for _, f in scores) / n if n else 0.0,
        "total": n,
    }


class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text (2016); Know What You Don't Know (2018)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references):
        scores = [question_scores(p, r) for p, r in zip(predictions, references)]
        out = _summary(scores)
        has = [s for s, r in zip(scores, references) if r]
        if len(has) < len(scores):
            for name, part in (("HasAns", has), ("NoAns", [s for s, r in zip(scores, references) if not r])):
                out.update({f"{name}_{key}": value for key, value in _summary(part).items()})
        return out

"""ROUGE-1/2/L/Lsum F-measures with Google's rouge_score, computed locally (works offline).

Each prediction is scored against every one of its references and keeps the best score per
ROUGE type (DialogSum's test split has three references); the result is the mean over examples.
"""

import logging
import re

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = "ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures (0-1), max over references, mean over examples."
_KWARGS_DESCRIPTION = """
Args:
    predictions: generated texts.
    references: for each prediction, a list of reference texts (or one text).
    use_stemmer: Porter-stem words before matching (default True).
Returns:
    rouge1, rouge2, rougeL, rougeLsum: means of the per-example best F-measures.
"""
TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
logging.getLogger("absl").setLevel(logging.WARNING)  # rouge_score logs a line per scorer


def _sentences(text: str) -> str:
    """rougeLsum treats newlines as sentence breaks; put one after each sentence."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, ROUGE: A Package for Automatic Evaluation of Summaries, 2004",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references, use_stemmer=True):
        scorer = rouge_scorer.RougeScorer(list(TYPES), use_stemmer=use_stemmer)
        totals = dict.fromkeys(TYPES, 0.0)
        for prediction, refs in zip(predictions, references):
            refs = [refs] if isinstance(refs, str) else refs
            scores = [scorer.score(_sentences(ref), _sentences(prediction)) for ref in refs]
            for kind in TYPES:
                totals[kind] += max(s[kind].fmeasure for s in scores)
        n = max(len(predictions), 1)
        return {kind: totals[kind] / n for kind in TYPES}

"""Accuracy, macro-F1 and per-class precision/recall, computed with scikit-learn."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

_DESCRIPTION = "Accuracy, macro-F1, and per-class precision and recall for single-label classification."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids.
    references: true class ids.
    labels: class ids to report (default: those seen); label_names: names for them in the output.
Returns:
    accuracy, macro_f1, and dicts precision/recall keyed by label name.
"""


class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None, label_names=None):
        labels = list(labels) if labels is not None else sorted(set(references) | set(predictions))
        names = list(label_names) if label_names is not None else [str(label) for label in labels]
        precision, recall, _, _ = precision_recall_fscore_support(references, predictions, labels=labels, zero_division=0)
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0)),
            "precision": {name: float(value) for name, value in zip(names, precision)},
            "recall": {name: float(value) for name, value in zip(names, recall)},
        }

"""Classification's report: accuracy and F1 (class_scores.py), per-example statistics for the bootstrap,
the confusion matrix and recall per class for `dvc plots`, and the model card's example."""

from __future__ import annotations

import csv
from pathlib import Path

from ftpipe.tasks.base import Plot, load_metric


EXAMPLE = "The food was great but the service was painfully slow."  # the model card's example input


# `dvc plots` of this task type (dvc.yaml's `plot_specs` slots, filled from task.type by src/hydra_plugins).
PLOTS = [
    Plot("confusion_tuned", "confusion.csv", "actual", "predicted", "confusion", "Tuned model: confusion matrix", ("tuned",)),
    Plot("confusion_base", "confusion.csv", "actual", "predicted", "confusion", "Base model: confusion matrix", ("base",)),
    Plot("recall_by_class", "per_class.csv", "recall", "class", "bar_horizontal", "Recall by class (0-1), base and tuned"),
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


class Report:
    """Classification's report phase (mixed into the Task in __init__)."""

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

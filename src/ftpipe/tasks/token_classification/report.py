"""Token classification's report: entity-level precision, recall and F1 (entities.py), per-example
statistics for the bootstrap, confusion plots for `dvc plots`, and the model card's example."""

from __future__ import annotations

import csv
from pathlib import Path

from ftpipe.tasks.base import Plot, load_metric


EXAMPLE = "Anna Berg flew from Lisbon to Oslo to meet the board of Acme Corp."  # the model card's


NONE = "(none)"  # no entity at that span


# `dvc plots` of this task type (dvc.yaml's `plot_specs` slots, filled from task.type by src/hydra_plugins).
PLOTS = [
    Plot("f1_by_entity_type", "per_type.csv", "f1", "type", "bar_horizontal", "Entity F1 (0-1) by type, base and tuned"),
    Plot("entity_confusion_tuned", "confusion.csv", "actual", "predicted", "confusion",
         "Tuned model: entity types, reference vs predicted at the same span", ("tuned",)),
    Plot("entity_confusion_base", "confusion.csv", "actual", "predicted", "confusion",
         "Base model: entity types, reference vs predicted at the same span", ("base",)),
]


class Report:
    """Token classification's report phase (mixed into the Task in __init__)."""

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

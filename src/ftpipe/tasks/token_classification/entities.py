"""Entity-level precision, recall and F1 (per type, micro and macro) and token accuracy, by seqeval's rules.

An entity is a (type, first word, last word + 1) span of IOB2 tags; a predicted entity counts only
when its type and both boundaries match a reference entity. Two modes, as in seqeval:
- default (conlleval's rules): an I-X that does not continue an X entity starts one;
- strict: only B-X starts an entity, and such an I-X belongs to none.
Written here rather than taken from the `seqeval` package: its rules for IOB2 are the twenty lines
of `entities` below, and the package is an unmaintained source-only release.
"""

import datasets
import evaluate

_DESCRIPTION = "Entity-level precision/recall/F1 per type, micro and macro averaged, and token accuracy, for IOB2 tags."
_KWARGS_DESCRIPTION = """
Args:
    predictions: one list of tag names per sentence ("O", "B-PER", "I-PER", ...).
    references: the same, the true tags.
    mode: "default" or "strict" (seqeval's modes).
    types: entity types to report (default: those seen).
Returns:
    f1, precision, recall (micro), macro_f1, token_accuracy, per_type {type: {precision, recall, f1, support}}, entities_total, predicted_entities_total.
"""


def entities(tags, strict: bool = False) -> list[tuple[str, int, int]]:
    """The (type, start, end) spans of one sentence's IOB2 tags, end exclusive."""
    out, start, kind = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-")
        continues = start is not None and prefix == "I" and name == kind
        if start is not None and not continues:
            out.append((kind, start, i))
            start = kind = None
        if prefix == "B" or (prefix == "I" and not continues and not strict):
            start, kind = i, name
    return out


def _prf(hits: int, predicted: int, support: int) -> dict:
    precision = hits / predicted if predicted else 0.0
    recall = hits / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def score(predictions, references, mode: str = "default", types=None) -> dict:
    if mode not in ("default", "strict"):
        raise ValueError(f"mode must be 'default' or 'strict', got {mode!r}")
    strict = mode == "strict"
    true, pred = set(), set()
    tokens = correct = 0
    for n, (p, r) in enumerate(zip(predictions, references)):
        if len(p) != len(r):
            raise ValueError(f"sentence {n + 1}: {len(p)} predicted tags for {len(r)} reference tags")
        true |= {(n, *e) for e in entities(r, strict)}
        pred |= {(n, *e) for e in entities(p, strict)}
        tokens += len(r)
        correct += sum(a == b for a, b in zip(p, r))
    names = list(types) if types is not None else sorted({e[1] for e in true | pred})
    per_type = {}
    for name in names:
        t, p = {e for e in true if e[1] == name}, {e for e in pred if e[1] == name}
        per_type[name] = _prf(len(t & p), len(p), len(t))
    seen = [v for name, v in per_type.items() if v["support"] or any(e[1] == name for e in pred)]
    micro = _prf(len(true & pred), len(pred), len(true))
    return {"f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"],
            "macro_f1": sum(v["f1"] for v in seen) / len(seen) if seen else 0.0,
            "token_accuracy": correct / tokens if tokens else 0.0,
            "per_type": per_type, "entities_total": len(true), "predicted_entities_total": len(pred)}


class Entities(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references, mode="default", types=None):
        return score(predictions, references, mode, types)

"""Intervals and p-values on base-vs-tuned deltas: the paired bootstrap against closed forms, McNemar's
exact test, and each task's example statistics giving back its own headline metrics."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from conftest import train_record

from ftpipe.params import _validate
from ftpipe.significance import mcnemar, paired_bootstrap
from ftpipe.tasks import get_task, task_schema

MEAN = lambda sums, n: {"accuracy": sums[..., 0] / n}  # noqa: E731


def make_task(raw: dict):
    return get_task(_validate("task", task_schema(raw), raw))


def test_bootstrap_interval_of_a_binomial_delta_matches_the_normal_approximation():
    n, right = 400, 200  # base wrong everywhere, tuned right on half: delta 0.5, SE sqrt(0.25 / 400) = 0.025
    base = np.zeros((n, 1))
    tuned = np.array([[1.0]] * right + [[0.0]] * (n - right))
    out = paired_bootstrap(base, tuned, MEAN, resamples=4000, seed=0)["accuracy"]
    se = math.sqrt(0.5 * 0.5 / n)
    assert out["delta"] == 0.5
    assert out["ci95"][0] == pytest.approx(0.5 - 1.96 * se, abs=0.008) and out["ci95"][1] == pytest.approx(0.5 + 1.96 * se, abs=0.008)
    assert out["p_value"] < 0.001


def test_identical_predictions_give_an_interval_at_zero_and_p_one():
    scores = np.array([[float(i % 3 == 0)] for i in range(300)])
    out = paired_bootstrap(scores, scores.copy(), MEAN, resamples=500, seed=1)["accuracy"]
    assert out["ci95"][0] <= 0 <= out["ci95"][1] and out["p_value"] == 1.0
    assert mcnemar(scores[:, 0] == 1, scores[:, 0] == 1) == 1.0


def test_the_bootstrap_is_seeded_and_a_real_but_small_gain_is_not_called_significant():
    rng = np.random.default_rng(3)
    base = (rng.random((200, 1)) < 0.6).astype(float)
    tuned = base.copy()
    tuned[:4] = 1.0  # at most 4 more right of 200
    a = paired_bootstrap(base, tuned, MEAN, resamples=1000, seed=7)
    assert a == paired_bootstrap(base, tuned, MEAN, resamples=1000, seed=7)
    assert a["accuracy"]["ci95"][0] <= 0 or a["accuracy"]["p_value"] > 0.01


def test_mcnemar_exact_matches_the_binomial_closed_form():
    base = np.array([False] * 10 + [True] * 5)
    tuned = np.array([True] * 10 + [True] * 5)  # 10 disagreements, all won by tuned
    assert mcnemar(base, tuned) == pytest.approx(2 * 0.5 ** 10)


def test_classification_stats_give_back_accuracy_and_macro_f1():
    task = make_task({"type": "classification", "labels": ["a", "b", "c"]})
    rng = random.Random(0)
    rows = [{"reference": rng.choice("abc"), "prediction": rng.choice("aab")} for _ in range(120)]  # c never predicted
    stats, to_metrics = task.example_stats(rows)
    got = {k: float(v) for k, v in to_metrics(stats.sum(0), len(rows)).items()}
    want = task.metrics(rows)
    assert got == pytest.approx({"accuracy": want["accuracy"], "macro_f1": want["macro_f1"]})


def test_token_classification_stats_give_back_every_headline_metric():
    task = make_task({"type": "token_classification", "labels": ["PER", "LOC", "ORG"]})
    from ftpipe.tasks.token_classification.synthetic import entities

    rng = random.Random(1)
    rows = []
    for record in entities(60, seed=2):
        predicted = [t if rng.random() < 0.8 else rng.choice(["O", "B-LOC", "I-PER", "B-ORG"]) for t in record["tags"]]
        rows.append({"reference_tags": record["tags"], "predicted_tags": predicted})
    stats, to_metrics = task.example_stats(rows)
    got = {k: float(v) for k, v in to_metrics(stats.sum(0), len(rows)).items()}
    want = task.metrics(rows)
    assert got == pytest.approx({k: want[k] for k in got})
    assert set(got) == {"f1", "precision", "recall", "macro_f1", "token_accuracy"}


def test_qa_stats_give_back_exact_match_and_f1():
    from ftpipe.tasks.qa.squad import question_scores

    task = make_task({"type": "qa"})
    cases = [("Vesta", ["Vesta"]), ("the river Aro", ["Aro", "river Aro"]), ("", ["Paris"]), ("in 1990", ["1990"])]
    rows = []
    for prediction, answers in cases:
        em, f1 = question_scores(prediction, answers)
        rows.append({"prediction": prediction, "answers": answers, "exact_match": em, "score": f1})
    stats, to_metrics = task.example_stats(rows)
    got = {k: float(v) for k, v in to_metrics(stats.sum(0), len(rows)).items()}
    want = task.metrics(rows)
    assert got == pytest.approx({"exact_match": want["exact_match"], "f1": want["f1"]})


def test_compare_writes_intervals_to_the_json_and_the_report(tmp_path):
    from ftpipe.compare import compare

    task = make_task({"type": "classification", "labels": ["neg", "pos"]})
    rows = {"base": [], "tuned": []}
    for i in range(200):
        reference = "pos" if i % 2 else "neg"
        for which, right in (("base", i % 4 == 0), ("tuned", i % 10 != 0)):
            prediction = reference if right else ("neg" if reference == "pos" else "pos")
            rows[which].append({"id": f"r{i}", "input": "t", "reference": reference, "prediction": prediction, "score": float(right)})
    paths = {}
    for which in rows:
        paths[which] = tmp_path / f"{which}.jsonl"
        paths[which].write_text("".join(json.dumps(r) + "\n" for r in rows[which]))
        (tmp_path / f"{which}.json").write_text(json.dumps({k: v for k, v in task.metrics(rows[which]).items() if not isinstance(v, dict)}))
        (tmp_path / f"{which}_timing.json").write_text(json.dumps({"samples_per_second": 1.0}))
    (tmp_path / "record.json").write_text(json.dumps(train_record()))
    compare(tmp_path / "base.json", tmp_path / "tuned.json", paths["base"], paths["tuned"], tmp_path / "compare.json",
            tmp_path / "compare.md", 2, (tmp_path / "base_timing.json", tmp_path / "tuned_timing.json"), tmp_path / "record.json",
            task, resamples=500, seed=0)
    out = json.loads((tmp_path / "compare.json").read_text())
    accuracy = out["significance"]["accuracy"]
    assert out["accuracy"] == pytest.approx(0.9 - 0.25) and accuracy["delta"] == pytest.approx(out["accuracy"])
    assert 0 < accuracy["ci95"][0] < out["accuracy"] < accuracy["ci95"][1] and accuracy["p_value"] == pytest.approx(2 / 501)
    assert out["significance"]["mcnemar"]["p_value"] < 0.001 and "macro_f1" in out["significance"]
    report = (tmp_path / "compare.md").read_text()
    assert "| accuracy | 0.2500 | 0.9000 | +0.6500 | [+" in report and "| 0.004 |" in report and "paired bootstrap" in report
    # With speed_report (as the pipeline runs it) the speeds, which vary run to run, leave the git-tracked report.
    compare(tmp_path / "base.json", tmp_path / "tuned.json", paths["base"], paths["tuned"], tmp_path / "compare.json",
            tmp_path / "compare2.md", 2, (tmp_path / "base_timing.json", tmp_path / "tuned_timing.json"), tmp_path / "record.json",
            task, resamples=500, seed=0, speed_report=tmp_path / "speed.md")
    assert "eval samples/s" not in (tmp_path / "compare2.md").read_text() and "speed.md" in (tmp_path / "compare2.md").read_text()
    assert "| base | 0.25 | 1 |" in (tmp_path / "speed.md").read_text()


def test_the_ladder_calls_a_method_different_from_the_best_only_past_holms_correction():
    from ftpipe.tools.ladder import versus_best

    task = make_task({"type": "classification", "labels": ["neg", "pos"]})
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 300)

    def predictions(accuracy):
        right = rng.random(300) < accuracy
        return {f"r{i}": {"reference": "pos" if t else "neg", "prediction": ("pos" if t else "neg") if ok else ("neg" if t else "pos"),
                          "score": float(ok)} for i, (t, ok) in enumerate(zip(truth, right))}

    preds = {"full": [predictions(0.9)], "lora": [predictions(0.89)], "freeze": [predictions(0.6)]}  # one run each
    rows = [{"method": m, "metric": "accuracy", "value": float(np.mean([r["score"] for r in p[0].values()]))} for m, p in preds.items()]
    versus_best(rows, preds, task, resamples=1000, seed=0)
    by = {r["method"]: r["vs_best"] for r in rows}
    best = max(rows, key=lambda r: r["value"])["method"]
    assert by[best].startswith("top (one seed per method") and by["freeze"].startswith("differs")
    assert by["lora" if best == "full" else "full"].startswith("within noise")

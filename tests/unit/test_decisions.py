"""Decisions between runs (ftpipe-compare): seed-aware intervals that keep their error rate, equivalence
verdicts, why two runs differ, and one line for runs that cannot be compared."""

from __future__ import annotations

import numpy as np
import pytest

from ftpipe.core.results import PredictionRow
from ftpipe.significance import interval_and_tests, run_bootstrap, verdict
from ftpipe.tools.compare import compare, parse_arm
from ftpipe.tools.runs import Run, RunError
from ftpipe.tools.why import differences, label

MEAN = staticmethod(lambda sums, n: {"accuracy": sums[..., 0] / n})


def runs_of(rng, difficulty, seeds: int, seed_sd: float) -> list[np.ndarray]:
    """Right/wrong per example for `seeds` training runs: each run's skill shifted by its seed's own draw."""
    return [(rng.random((len(difficulty), 1)) < np.clip(difficulty[:, None] + rng.normal(0, seed_sd), 0, 1)).astype(float)
            for _ in range(seeds)]


def test_seed_aware_intervals_keep_their_error_rate_where_the_example_only_bootstrap_does_not():
    """Two arms that differ only by training-seed noise, 3 seeds each, 200 repeats: a difference called at
    the 5% level in at most 7% of them. The example-only bootstrap of one run per arm, on the same data,
    calls far more: it takes one seed's luck for a difference."""
    rng = np.random.default_rng(2026)
    seed_aware = example_only = 0
    for repeat in range(200):
        difficulty = rng.beta(3, 2, size=200)
        a, b = runs_of(rng, difficulty, 3, 0.04), runs_of(rng, difficulty, 3, 0.04)
        for counter in ("seed", "example"):
            observed, replicates = run_bootstrap(a, b, MEAN, 400, repeat, resample_seeds=counter == "seed")
            low, high = np.percentile(replicates["accuracy"], [2.5, 97.5])
            called = low > 0 or high < 0
            seed_aware += called and counter == "seed"
            example_only += called and counter == "example"
    print(f"false difference rate: seed-aware {seed_aware / 200:.3f}, example-only {example_only / 200:.3f}")
    assert seed_aware / 200 <= 0.07
    assert example_only > 2 * seed_aware


def test_with_three_seeds_the_interval_is_at_least_as_wide_as_the_example_only_one():
    rng = np.random.default_rng(0)
    difficulty = rng.beta(3, 2, size=300)
    a, b = runs_of(rng, difficulty, 3, 0.03), runs_of(rng, difficulty, 3, 0.03)
    width = {}
    for name in ("seeds", "examples only"):
        _, replicates = run_bootstrap(a, b, MEAN, 1000, 0, resample_seeds=name == "seeds")
        low, high = np.percentile(replicates["accuracy"], [2.5, 97.5])
        width[name] = high - low
    assert width["seeds"] >= width["examples only"]


def test_one_run_per_arm_gives_the_compare_stages_paired_bootstrap():
    from ftpipe.significance import paired_bootstrap

    rng = np.random.default_rng(1)
    a, b = (rng.random((250, 1)) < 0.6).astype(float), (rng.random((250, 1)) < 0.7).astype(float)
    observed, replicates = run_bootstrap([a], [b], MEAN, 500, 3)
    tested = interval_and_tests(observed["accuracy"], replicates["accuracy"], 0.01)
    stage = paired_bootstrap(a, b, MEAN, 500, 3)["accuracy"]
    assert tested["ci95"] == stage["ci95"] and tested["p_value"] == stage["p_value"]


@pytest.mark.parametrize("shift, margin, expected", [(0.0, 0.05, "equivalent within ±0.05"), (0.25, 0.05, "B better"),
                                                     (-0.25, 0.05, "A better"), (0.0, 0.001, "within noise")])
def test_the_verdict_is_a_difference_an_equivalence_or_neither(shift, margin, expected):
    rng = np.random.default_rng(5)
    a = (rng.random((2000, 1)) < 0.6).astype(float)
    b = a.copy()
    right, wrong = np.flatnonzero(a[:, 0] == 1), np.flatnonzero(a[:, 0] == 0)
    b[right[:20]], b[wrong[:20]] = 0, 1  # the runs disagree on 2% of the examples, as often either way
    if shift:
        flipped = np.flatnonzero((b[:, 0] == 0) if shift > 0 else (b[:, 0] == 1))[:int(abs(shift) * len(b))]
        b[flipped] = 1 - b[flipped]
    observed, replicates = run_bootstrap([a], [b], MEAN, 1000, 0)
    assert verdict(interval_and_tests(observed["accuracy"], replicates["accuracy"], margin)) == expected


def run(name: str, params: dict, ids=("a", "b", "c", "d"), references=None, lock: dict | None = None, right=(1, 0, 1, 1)) -> Run:
    references = references or ["pos"] * len(ids)
    rows = [PredictionRow(i, "text", ref, ref if ok else "neg", float(ok)) for i, ref, ok in zip(ids, references, right)]
    return Run(name, None, params, lock or {}, rows, None, None, None)


PARAMS = {"task": {"name": "reviews", "type": "classification", "labels": ["neg", "pos"], "text_field": "text", "label_field": "label"},
          "train": {"lr": 5e-5, "seed": 42}}


def with_train(**train) -> dict:
    return {**PARAMS, "train": {**PARAMS["train"], **train}}


def test_why_names_the_changed_param_alone_and_labels_a_seed_change_seed_only():
    lock = {"stages": {"train": {"deps": [{"path": "src/ftpipe/train.py", "md5": "1"}], "outs": [{"path": "models/tuned", "md5": "x"}]},
                       "subset": {"deps": [], "outs": [{"path": "data/subset", "md5": "s"}]}}}
    retrained = {"stages": {**lock["stages"], "train": {**lock["stages"]["train"], "outs": [{"path": "models/tuned", "md5": "y"}]}}}
    found = differences(run("a", PARAMS, lock=lock), run("b", with_train(lr=2e-5), lock=retrained))
    assert [(d.kind, d.key) for d in found] == [("params", "train.lr")]  # the tuned model's hash is not a cause
    assert label(found) == "differ in params"
    assert label(differences(run("a", PARAMS, lock=lock), run("b", with_train(seed=7), lock=retrained))) == "seed only"
    code = {"stages": {**lock["stages"], "train": {**lock["stages"]["train"], "deps": [{"path": "src/ftpipe/train.py", "md5": "2"}]}}}
    data = {"stages": {**lock["stages"], "subset": {"deps": [], "outs": [{"path": "data/subset", "md5": "t"}]}}}
    assert [(d.kind, d.key, d.a) for d in differences(run("a", PARAMS, lock=lock), run("b", PARAMS, lock=code))] == [
        ("code", "src/ftpipe/train.py", "read by train")]
    assert [(d.kind, d.key) for d in differences(run("a", PARAMS, lock=lock), run("b", PARAMS, lock=data))] == [("data", "data/subset")]


def test_runs_whose_evaluation_sets_differ_are_refused_in_one_line_naming_the_difference():
    with pytest.raises(RunError) as info:
        compare([[run("a", PARAMS)], [run("b", PARAMS, ids=("a", "b", "c", "e"))]], ("A", "B"), None, 100, 0, unpaired=False)
    message = str(info.value)
    assert "not comparable: the eval sets differ (example ids" in message and "--unpaired" in message and "\n" not in message
    result = compare([[run("a", PARAMS)], [run("b", PARAMS, ids=("a", "b", "c", "e"))]], ("A", "B"), None, 100, 0, unpaired=True)
    assert result["paired"] is False
    with pytest.raises(RunError, match="eval sets differ \\(references: 1 of 4 differ, e.g. id d"):
        compare([[run("a", PARAMS)], [run("b", PARAMS, references=["pos", "pos", "pos", "neg"])]], ("A", "B"), None, 100, 0, False)


def test_runs_of_different_task_types_and_empty_arms_are_one_line():
    other = {**PARAMS, "task": {"type": "summarization"}}
    with pytest.raises(RunError, match="runs of different task types \\(classification, summarization\\)"):
        compare([[run("a", PARAMS)], [run("b", other)]], ("A", "B"), None, 100, 0, False)
    with pytest.raises(RunError, match="names no run"):
        parse_arm("base=", "A")
    assert parse_arm("lr=exp-1,exp-2", "A") == ("lr", ["exp-1", "exp-2"]) and parse_arm("exp-9", "B") == ("B", ["exp-9"])


def test_the_report_says_training_noise_is_not_covered_with_one_run_per_arm():
    from ftpipe.tools.compare import render

    result = compare([[run("a", PARAMS)], [run("b", with_train(seed=7), right=(1, 1, 1, 1))]], ("A", "B"), None, 200, 0, False)
    text = render(result, markdown=False)
    assert "training noise (the seed) is not covered" in text and "Why a and b differ: seed only." in text
    assert result["margin"] == 0.01 and "p (equivalent within ±0.01)" in text
    markdown = render(result, markdown=True)
    assert markdown.splitlines()[1].startswith("|---|")


def test_a_run_without_predictions_is_one_line_saying_evaluate_never_ran(tmp_path, monkeypatch):
    from ftpipe.tools.runs import load

    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunError, match="^workspace: no predictions/tuned.jsonl: evaluate never ran there"):
        load("workspace", None)
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "tuned.jsonl").write_text('{"id": "a", "input": "x"}\n')
    with pytest.raises(RunError, match="row 1.*field reference: missing"):
        load("workspace", None)


def test_the_ladder_calls_a_method_best_only_when_the_seed_aware_test_separates_it(monkeypatch):
    from ftpipe.tools.ladder_report import versus_best

    class Task:  # right or wrong per example
        def example_stats(self, rows):
            return np.array([[r["score"]] for r in rows], dtype=np.float64), lambda sums, n: {"accuracy": sums[..., 0] / n}

    rng = np.random.default_rng(3)

    def runs(skill: float, seeds: int) -> list[dict]:
        return [{str(i): {"score": float(rng.random() < skill + shift)} for i in range(600)}
                for shift in rng.normal(0, 0.01, size=seeds)]

    def table(predictions):
        rows = [{"method": m, "metric": "accuracy", "value": float(np.mean([np.mean([r["score"] for r in run.values()]) for run in ps])),
                 "vs_best": None} for m, ps in predictions.items()]
        versus_best(rows, predictions, Task(), 500, 0)
        return {r["method"]: r["vs_best"] for r in rows}

    clear = table({"full": runs(0.8, 3), "lora": runs(0.6, 3)})
    assert clear["full"] == "best" and clear["lora"].startswith("differs")
    close = table({"full": runs(0.7, 3), "lora": runs(0.69, 3)})
    assert close["full"] == "top, within noise of lora" or close["lora"] == "top, within noise of full"
    one = table({"full": runs(0.8, 1), "lora": runs(0.6, 1)})
    assert one["full"].startswith("top (one seed per method") and one["lora"].startswith("differs")

    from ftpipe.tools.ladder_report import seed_intervals

    seeded = runs(0.8, 3)
    row = {"method": "full", "metric": "accuracy", "value": float(np.mean([np.mean([r["score"] for r in run.values()]) for run in seeded])),
           "ci95_low": None, "ci95_high": None, "p_vs_base": None}
    seed_intervals([row], {"full": seeded}, runs(0.5, 1)[0], Task(), 500, 0)
    assert row["ci95_low"] < row["value"] < row["ci95_high"] and row["p_vs_base"] < 0.01

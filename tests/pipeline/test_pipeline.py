"""End to end: the tiny experiment through every stage with `dvc repro`, and what reruns after a change."""

from __future__ import annotations

import json
import re

import pytest

from conftest import run

pytestmark = pytest.mark.slow

ALL_STAGES = {"download_data", "download_model", "preprocess", "tokenize", "subset", "train",
              "evaluate@base", "evaluate@tuned", "compare", "export", "summary"}


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_writes_metrics_and_tuned_beats_base(tiny_pipeline):
    base = json.loads((tiny_pipeline / "metrics/base.json").read_text())
    tuned = json.loads((tiny_pipeline / "metrics/tuned.json").read_text())
    delta = json.loads((tiny_pipeline / "metrics/compare.json").read_text())
    assert tuned["accuracy"] > base["accuracy"] + 0.1
    assert delta["accuracy"] == pytest.approx(tuned["accuracy"] - base["accuracy"])
    # The headline in the metrics file; per class and counts in the details beside it.
    assert set(tuned) == set(base) == set(delta) - {"significance"} == {"accuracy", "macro_f1"}
    for name in ("accuracy", "macro_f1"):  # each delta with its paired-bootstrap interval
        low, high = delta["significance"][name]["ci95"]
        assert low <= delta[name] <= high and 0 < delta["significance"][name]["p_value"] <= 1
    details = json.loads((tiny_pipeline / "metrics/details/tuned.json").read_text())
    assert set(details["precision"]) == {"1 star", "2 stars", "3 stars", "4 stars", "5 stars"}
    assert details["accuracy"] == tuned["accuracy"]
    report = (tiny_pipeline / "reports/compare.md").read_text()
    assert "| accuracy |" in report and "## Fixed by tuning" in report
    rows = (tiny_pipeline / "plots/tuned/confusion.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == 1 + details["examples"]
    assert (tiny_pipeline / "dvclive/train/metrics.json").exists()


def test_unchanged_repro_runs_nothing_but_still_ends_with_the_headline(tiny_pipeline):
    out = run(["dvc", "repro"], tiny_pipeline).stdout
    assert ran_stages(out) == {"summary"}, out  # always run: it only prints
    base = json.loads((tiny_pipeline / "metrics/base.json").read_text())["accuracy"]
    tuned = json.loads((tiny_pipeline / "metrics/tuned.json").read_text())["accuracy"]
    lines = [line for line in out.splitlines() if line.strip()]
    headline = next(i for i, line in enumerate(lines) if line.startswith("accuracy (0-1): "))
    assert lines[headline].startswith(f"accuracy (0-1): base {base:.4g} -> tuned {tuned:.4g} ({tuned - base:+.4g} ["), out
    assert lines[headline + 1].startswith("report: reports/compare.md"), out
    assert all("Running stage" not in line for line in lines[headline:]), out  # nothing ran after it


def test_lr_change_reruns_only_train_evaluate_tuned_compare_and_export_of_the_new_model(tiny_pipeline):
    # export reruns for its dependency models/tuned (it merges or pushes that model), not for the
    # param: it declares no train or method params.
    result = run(["dvc", "exp", "run", "-S", "train.lr=1e-3"], tiny_pipeline)
    out = result.stdout
    assert ran_stages(out) == {"train", "evaluate@tuned", "compare", "export", "summary"}, out
    logs = result.stdout + result.stderr
    assert "{'loss'" not in logs and "train: " in logs, logs  # progress lines, not the Trainer's raw log dicts
    # Nothing upstream was touched, and the base model's metrics are the cached ones.
    status = json.loads(run(["dvc", "status", "--json"], tiny_pipeline).stdout)
    assert status == {"summary": ["always changed"]}, status  # the summary stage runs every time, by design


def test_subset_change_does_not_retokenize(tiny_pipeline):
    out = run(["dvc", "exp", "run", "-S", "subset.train_size=200"], tiny_pipeline).stdout
    assert ran_stages(out) == {"subset", "train", "evaluate@base", "evaluate@tuned", "compare", "export", "summary"}, out

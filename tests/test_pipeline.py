"""End to end: the tiny experiment through every stage with `dvc repro`, and what reruns after a change."""

from __future__ import annotations

import json
import re

import pytest

from conftest import run

pytestmark = pytest.mark.slow

ALL_STAGES = {"download_data", "download_model", "preprocess", "tokenize", "subset", "train",
              "evaluate@base", "evaluate@tuned", "compare"}


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_writes_metrics_and_tuned_beats_base(tiny_pipeline):
    base = json.loads((tiny_pipeline / "metrics/base.json").read_text())
    tuned = json.loads((tiny_pipeline / "metrics/tuned.json").read_text())
    delta = json.loads((tiny_pipeline / "metrics/compare.json").read_text())
    assert tuned["accuracy"] > base["accuracy"] + 0.1
    assert delta["accuracy"] == pytest.approx(tuned["accuracy"] - base["accuracy"])
    assert set(tuned["precision"]) == {"1 star", "2 stars", "3 stars", "4 stars", "5 stars"}
    report = (tiny_pipeline / "reports/compare.md").read_text()
    assert "| accuracy |" in report and "## Fixed by tuning" in report
    rows = (tiny_pipeline / "plots/tuned/confusion.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == 1 + tuned["examples"]
    assert (tiny_pipeline / "dvclive/train/metrics.json").exists()


def test_unchanged_repro_runs_nothing(tiny_pipeline):
    out = run(["dvc", "repro"], tiny_pipeline).stdout
    assert ran_stages(out) == set(), out


def test_lr_change_reruns_only_train_evaluate_tuned_and_compare(tiny_pipeline):
    out = run(["dvc", "exp", "run", "-S", "train.lr=1e-3"], tiny_pipeline).stdout
    assert ran_stages(out) == {"train", "evaluate@tuned", "compare"}, out
    # Nothing upstream was touched, and the base model's metrics are the cached ones.
    status = run(["dvc", "status"], tiny_pipeline).stdout
    assert "changed" not in status, status


def test_subset_change_does_not_retokenize(tiny_pipeline):
    out = run(["dvc", "exp", "run", "-S", "subset.train_size=200"], tiny_pipeline).stdout
    assert ran_stages(out) == {"subset", "train", "evaluate@base", "evaluate@tuned", "compare"}, out

"""int8 evaluation through `dvc repro`: only the evaluation stages rerun, and the reports say so."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_int8_evaluation_and_prediction_run_and_say_so(tiny_pipeline, tmp_path):
    import json

    from conftest import run, write_params

    repo = tiny_pipeline
    fp32 = json.loads((repo / "metrics/tuned.json").read_text())
    write_params(repo, ["evaluate.precision=int8"])
    out = run(["dvc", "repro"], repo).stdout
    assert "Running stage 'train'" not in out and "Running stage 'evaluate@tuned'" in out  # only evaluation and after
    report = (repo / "reports/compare.md").read_text()
    assert "Evaluated in int8 (base) and int8 (tuned)" in report
    assert "| int8 |" in (repo / "reports/speed.md").read_text()
    int8 = json.loads((repo / "metrics/tuned.json").read_text())
    assert int8.keys() == fp32.keys() and abs(int8["accuracy"] - fp32["accuracy"]) <= 0.1  # a change, measured, within reason

    rows = [json.loads(line) for line in run(["ftpipe-predict", "--model", "models/tuned", "--precision", "int8", "--json",
                                              "--text", "Great food."], repo).stdout.splitlines()]
    assert len(rows) == 1 and sum(rows[0]["probabilities"].values()) == pytest.approx(1, abs=1e-4)

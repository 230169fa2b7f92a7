"""Through DVC: a stage that fails on bad input or diverging training keeps every output of the previous good run."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from conftest import CORPUS, assert_one_line_error, digest, run


@pytest.mark.slow
def test_failed_dvc_repro_keeps_previous_outputs(tiny_pipeline):
    """Through DVC: a bad file fails preprocess; every output of the good run is byte-identical after."""
    repo = tiny_pipeline
    outputs = [repo / p for p in ("data/clean", "data/tokenized", "data/subset", "models", "metrics", "predictions",
                                  "plots", "reports", "dvclive")]
    before = digest(outputs)
    saved = {name: (repo / name).read_text() for name in ("params.yaml", "dvc.lock")}
    params = yaml.safe_load(saved["params.yaml"])
    bad = str(CORPUS / "classification/label_out_of_range.jsonl")
    params["data"].update(source="local", files={"train": [bad], "eval": [bad]})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = run(["dvc", "repro"], repo, check=False)
        assert result.returncode != 0
        assert "label_out_of_range.jsonl: record 2: field 'label': label '7' out of range" in result.stderr
        assert digest(outputs) == before
        status = run(["dvc", "status", "preprocess"], repo).stdout
        assert "deleted" not in status, status  # outs are still there, just out of date
    finally:  # put the shared fixture back as it was: the good params, lock and raw data
        for name, text in saved.items():
            (repo / name).write_text(text)
        run(["dvc", "checkout", "-f", "data/raw"], repo)
    # Only the always-run summary stage may be listed: nothing else changed.
    assert json.loads(run(["dvc", "status", "--json"], repo).stdout) in ({}, {"summary": ["always changed"]})


@pytest.mark.slow
def test_diverging_training_fails_and_keeps_the_previous_model(tiny_pipeline):
    """Through DVC: train.lr=1e6 once exited 0 with every weight NaN; now train stops with one line, outputs intact."""
    repo = tiny_pipeline
    outputs = [repo / p for p in ("models", "metrics", "predictions", "plots", "reports", "dvclive")]
    before = digest(outputs)
    saved = {name: (repo / name).read_text() for name in ("params.yaml", "dvc.lock")}
    params = yaml.safe_load(saved["params.yaml"])
    params["train"]["lr"] = 1e6
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = run(["dvc", "repro"], repo, check=False)
        line = assert_one_line_error(result, "training diverged at step ", "(train.lr=1e+06); lower train.lr or check the data "
                                             "(the previous outputs are kept)")
        assert re.search(r"step \d+: (loss|grad_norm) is (nan|inf)", line), line
        assert digest(outputs) == before
    finally:
        for name, text in saved.items():
            (repo / name).write_text(text)
        shutil.rmtree(repo / "checkpoints", ignore_errors=True)  # the diverged run's, for other params
    assert json.loads(run(["dvc", "status", "--json", "train"], repo).stdout) == {}

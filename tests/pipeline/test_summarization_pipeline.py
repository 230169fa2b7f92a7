"""The tiny LoRA summarization experiment through every stage with `dvc repro`."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_tiny_dialogsum_pipeline(dialogsum_pipeline):
    repo = dialogsum_pipeline
    tuned = json.loads((repo / "metrics/tuned.json").read_text())
    assert set(tuned) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}  # the headline; counts in the details
    assert json.loads((repo / "metrics/details/tuned.json").read_text())["examples"] == 8
    rows = [json.loads(line) for line in (repo / "predictions/tuned.jsonl").read_text().splitlines()]
    assert len(rows[0]["references"]) == 3 and 0 <= rows[0]["score"] <= 1
    assert (repo / "models/tuned/adapter_config.json").exists()  # the adapter, not a full model
    assert "| rougeL |" in (repo / "reports/compare.md").read_text()
    train_log = json.loads((repo / "models/tuned/ftpipe_train.json").read_text())
    assert 0 < train_log["trainable_fraction"] < 0.2
    from ftpipe.precision import resolve
    assert train_log["precision"] == resolve("auto")  # what `auto` meant on this machine is on record
    merged = repo / "models/export"  # export.merge=true in this pipeline: the adapter folded into its base
    assert not (merged / "adapter_config.json").exists() and (merged / "model.safetensors").exists()

"""`-S train.packing=true` through the pipeline (the packing itself is checked in tests/unit/test_packing.py)."""

from __future__ import annotations

import json

import pytest

from conftest import BUILDS, run, write_params


@pytest.mark.slow
def test_tiny_dialogsum_trains_packed(dialogsum_pipeline):
    """`-S train.packing=true` through the pipeline: the train stage runs packed, to a tuned adapter."""
    repo = dialogsum_pipeline
    write_params(repo, [*BUILDS["test_tiny_dialogsum"], "train.packing=true"])
    out = run(["dvc", "repro", "train"], repo)
    assert "Running stage 'tokenize'" not in out.stdout and "Running stage 'train'" in out.stdout  # packing is train's alone
    record = json.loads((repo / "models/tuned/ftpipe_train.json").read_text())
    assert (repo / "models/tuned/adapter_config.json").exists() and record["train_loss"] > 0
    assert record["train"]["packing"] is True  # on record, and in the card's training settings
    assert "| train.packing | True |" in (repo / "models/tuned/README.md").read_text()

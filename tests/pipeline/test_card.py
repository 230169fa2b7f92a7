"""The model card train writes, and the documented loading code (docs/using-results.md): each loads a tuned model with plain
transformers/peft and runs it, from a copy in another directory where the card says so."""

from __future__ import annotations

import json

import pytest
import yaml

from cards import card_parts, docs_snippet, follow_card, run_python

pytestmark = pytest.mark.slow


def test_full_model_card_metadata_and_loading_from_a_copy(tiny_pipeline, tmp_path):
    from ftpipe.models.loading import base_id

    meta, body, _ = card_parts(tiny_pipeline / "models/tuned/README.md")
    record = json.loads((tiny_pipeline / "models/tuned/ftpipe_train.json").read_text())
    identity = json.loads((tiny_pipeline / "models/base/ftpipe_source.json").read_text())
    assert meta["base_model"] == base_id(identity) == base_id(record["base_model"])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert meta["metrics"] == ["accuracy", "f1"] and "ftpipe" in meta["tags"]
    assert f"Trainable parameters: {record['trainable_params']:,}" in body and "| train.lr | 0.002 |" in body
    assert "classes: 1 star, 2 stars, 3 stars, 4 stars, 5 stars" in body and "synthetic reviews" in body
    # The commit and experiment are the run's (runs/train), not the model's: its hash is then the weights'.
    assert "git checkout <the commit whose dvc.lock lists this model>" in body and "dvc repro" in body
    assert "no test scores" in body
    out = follow_card(tiny_pipeline / "models/tuned", tmp_path)
    assert "'label': '" in out and "star" in out, out


def test_adapter_card_loads_the_adapter_on_its_base_from_a_copy(dialogsum_pipeline, tmp_path):
    meta, body, code = card_parts(dialogsum_pipeline / "models/tuned/README.md")
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation" and meta["base_model"] == "tiny_llama"
    adapter = json.loads((dialogsum_pipeline / "models/tuned/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == meta["base_model"]  # the real base, not models/base
    rank = yaml.safe_load((dialogsum_pipeline / "params.yaml").read_text())["method"]["peft"]["r"]
    assert "PeftModel.from_pretrained" in code and f'"r": {rank}' in body and rank == adapter["r"]
    follow_card(dialogsum_pipeline / "models/tuned", tmp_path, base=dialogsum_pipeline / "models/base")  # runs, generates


def test_merged_export_card_loads_without_peft(dialogsum_pipeline, tmp_path):
    meta, body, code = card_parts(dialogsum_pipeline / "models/export/README.md")
    assert meta["library_name"] == "transformers" and "PeftModel" not in code and "merged into the base" in body
    follow_card(dialogsum_pipeline / "models/export", tmp_path)


def test_documented_classification_snippet(tiny_pipeline):
    out = run_python(docs_snippet("classification"), tiny_pipeline)
    assert out.count("'label'") == 5, out  # every class with its probability


def test_documented_summarization_snippet_loads_the_adapter_on_its_base(dialogsum_pipeline):
    run_python(docs_snippet("summarization"), dialogsum_pipeline)

"""Security: Hub tokens only from the environment and never written anywhere; no remote code unless
configured; weights only from safetensors; Hub downloads pinned to a revision in config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO

FAKE_TOKEN = "hf_FAKEtokenFORftpipeTESTS0123456789"


def test_trust_remote_code_is_off_unless_configured(composed):
    from ftpipe.core.config import ModelConfig

    assert ModelConfig(source="tiny").trust_remote_code is False
    assert composed["model"].get("trust_remote_code", False) is False
    for path in (REPO / "conf/model").glob("*.yaml"):
        assert yaml.safe_load(path.read_text()).get("trust_remote_code", False) is False, path


def test_hub_sources_pin_a_revision():
    for group in ("model", "data"):
        for path in (REPO / "conf" / group).glob("*.yaml"):
            cfg = yaml.safe_load(path.read_text()) or {}
            if cfg.get("source") == "hub":
                assert cfg.get("revision"), f"{path.relative_to(REPO)}: set revision (a commit sha) for Hub downloads"


def test_weights_load_only_from_safetensors(tmp_path: Path):
    """A model folder with pickled weights (pytorch_model.bin) is refused, by download and by loading."""
    from transformers import BertConfig, BertForSequenceClassification

    from ftpipe.core.config import ModelConfig
    from ftpipe.core.errors import ConfigError
    from ftpipe.models.loading import load_for_task
    from ftpipe.models.sources import download_model
    from ftpipe.tasks import get_task
    from ftpipe.params import validate

    model_dir = tmp_path / "pickled"
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    import torch

    config.save_pretrained(model_dir)  # transformers v5 writes only safetensors: pickle the weights by hand
    torch.save(BertForSequenceClassification(config).state_dict(), model_dir / "pytorch_model.bin")
    assert not list(model_dir.glob("*.safetensors"))

    with pytest.raises(ConfigError, match=r"no \*\.safetensors weights"):
        download_model(ModelConfig(name="x", source="local", path=str(model_dir)), tmp_path / "base")
    task = get_task(validate({"task": {"type": "classification", "labels": ["a", "b"]}}, ("task",)).task)
    with pytest.raises(OSError):  # transformers: no model.safetensors, and .bin is not allowed
        load_for_task(task, model_dir, tokenizer=None)

"""Security: Hub tokens only from the environment and never written anywhere; no remote code unless
configured; weights only from safetensors; Hub downloads pinned to a revision in config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_repo, run

FAKE_TOKEN = "hf_FAKEtokenFORftpipeTESTS0123456789"


@pytest.mark.slow
def test_token_from_env_never_reaches_params_logs_metrics_or_dvc_files(tmp_path):
    # A short run (10 steps) is enough: every stage runs and writes all its outputs.
    repo = make_repo(tmp_path / "repo", overrides=["train.max_steps=10", "train.save_steps=5"])
    out = run(["dvc", "repro"], repo, env={"HF_TOKEN": FAKE_TOKEN, "HUGGING_FACE_HUB_TOKEN": FAKE_TOKEN})
    run("git add -A && git commit -qm run", repo)
    assert FAKE_TOKEN not in out.stdout + out.stderr
    leaks = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and FAKE_TOKEN.encode() in p.read_bytes()]
    assert leaks == [], leaks  # includes .git, the DVC cache, dvc.lock, params.yaml, metrics, models
    assert not re.search(r"^\s*\w*token\s*:", (repo / "params.yaml").read_text(), flags=re.M | re.I)


def test_trust_remote_code_is_off_unless_configured(composed):
    from ftpipe.config import ModelConfig

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

    from ftpipe.config import ModelConfig
    from ftpipe.errors import ConfigError
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

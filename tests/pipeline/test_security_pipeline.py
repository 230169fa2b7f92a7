"""A Hub token in the environment of a whole `dvc repro` reaches no file, log, metric or DVC record."""

from __future__ import annotations

import re

import pytest

from conftest import make_repo, run

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

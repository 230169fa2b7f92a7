"""ftpipe-compare on real experiments of a tiny pipeline: the user's route, `dvc exp run` then the command."""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error, run

pytestmark = pytest.mark.slow


def test_compare_names_the_changed_param_alone_and_a_seed_change_as_seed_only(reproduced, tmp_path):
    repo = reproduced("test_tiny", tmp_path / "repo")
    run(["dvc", "exp", "run", "-n", "lr", "-S", "train.lr=2e-5"], repo)
    run(["dvc", "exp", "run", "-n", "seed7", "-S", "train.seed=7"], repo)

    result = json.loads(run(["ftpipe-compare", "HEAD", "lr", "--json"], repo).stdout)
    found = result["why"]["differences"]
    assert [d["key"] for d in found if d["kind"] == "params"] == ["train.lr"]
    assert not [d for d in found if d["kind"] in ("code", "data", "evaluation set")], found
    assert result["paired"] and set(result["metrics"]) == {"accuracy", "macro_f1"}
    accuracy = result["metrics"]["accuracy"]
    assert accuracy["ci95"][0] <= accuracy["delta"] <= accuracy["ci95"][1] and 0 < accuracy["p_value"] <= 1
    assert accuracy["verdict"] in ("A better", "B better", "within noise", "equivalent within ±0.01")

    table = run(["ftpipe-compare", "HEAD", "seed7"], repo).stdout
    assert "Why HEAD and seed7 differ: seed only." in table and "training noise (the seed) is not covered" in table
    assert table.splitlines()[0].split()[:3] == ["metric", "A", "B"]

    grouped = json.loads(run(["ftpipe-compare", "base=HEAD,seed7", "lr=lr", "--json"], repo).stdout)
    assert grouped["metrics"]["accuracy"]["a"]["runs"] == 2 and grouped["labels"] == ["base", "lr"]


def test_a_name_dvc_cannot_resolve_is_one_line(reproduced):
    repo = reproduced("test_tiny")
    result = run(["ftpipe-compare", "HEAD", "no-such-exp"], repo, check=False)
    assert_one_line_error(result, "no-such-exp: not an experiment, commit, tag or branch of this repository")

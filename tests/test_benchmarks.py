"""Smoke test of the benchmark suite's wiring (never its timings): the tiny model, 16 rows, inline."""

import json

import pytest

from conftest import REPO, run


# The suite benchmarks the real Yelp sample, which lives beside the project, never in it.
YELP = REPO.parent / "shared" / "data" / "yelp_review_full"


@pytest.mark.slow
@pytest.mark.skipif(not YELP.is_dir(), reason=f"benchmark data not found at {YELP}")
def test_suite_tiny_runs_both_arms(tmp_path):
    out = tmp_path / "tiny.json"
    run(["python", "-m", "benchmarks.run", "--quick", "--tiny", "--only", "arms", "tokenization", "--out", str(out)], cwd=REPO)
    results = json.loads(out.read_text())
    recipe, ftpipe = results["arms"]["recipe"], results["arms"]["ftpipe"]
    assert recipe["tokens_per_train_row"] == 512 and ftpipe["tokens_per_train_row"] < 512
    assert recipe["accuracy_base"] == ftpipe["accuracy_base"]  # same model, same seeded head: same predictions
    assert {"train_samples_per_s", "eval_tuned_samples_per_s", "peak_rss_mb"} <= set(ftpipe)
    assert results["summary"]["tokenization"] is not None

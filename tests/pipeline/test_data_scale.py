"""Smoke test of the data-at-scale benchmark's wiring (never its figures): 300 rows, the ftpipe and HF arms."""

import json

import pytest

from conftest import REPO, run

SOURCE = REPO.parent / "shared" / "data" / "yelp_review_full" / "full_dataset.csv"


@pytest.mark.slow
@pytest.mark.skipif(not SOURCE.is_file(), reason=f"benchmark data not found: {SOURCE}")
def test_data_suite_measures_each_stage(tmp_path):
    out = tmp_path / "data.json"
    # `before` builds the old commit's pipeline: the same code path as ftpipe's, twice the time, so left out
    run(["python", "-m", "benchmarks.run", "--suite", "data", "--rows", "300", "--arms", "ftpipe,hf", "--out", str(out)], cwd=REPO)
    results = json.loads(out.read_text())

    records = {r["arm"]: r for r in results["records"]}
    assert set(records) == {"ftpipe", "hf"} and all(r["rows"] == 300 for r in records.values())
    ftpipe, hf = records["ftpipe"]["stages"], records["hf"]["stages"]
    assert {"download_data", "preprocess", "tokenize", "subset"} <= set(ftpipe)
    assert all(ftpipe[s]["peak_rss_mb"] > 0 and ftpipe[s]["wall_s"] > 0 for s in ("preprocess", "tokenize"))
    assert all(hf[s]["peak_rss_mb"] > 0 for s in ("load_clean", "tokenize"))
    for r in records.values():
        assert r["bytes"]["input"] > 0 and r["bytes"]["cache"] > 0 and r["bytes"]["unique"] >= r["bytes"]["input"]
    assert records["ftpipe"]["bytes"]["workspace_and_cache"] <= records["ftpipe"]["bytes"]["workspace"] + records["ftpipe"]["bytes"]["cache"]
    assert results["summary"]["300"]["tokenize_peak_vs_hf"] > 0

    plotted = json.loads((tmp_path / "data-rows.json").read_text())  # what benchmarks/dvc.yaml plots
    assert {(p["arm"], p["stage"]) for p in plotted} >= {("ftpipe", "preprocess"), ("hf", "tokenize")}

"""Smoke test of the benchmark suite's wiring (never its timings): tiny models, a handful of rows, inline."""

import json

import pytest

from conftest import REPO, run


# The suite benchmarks real datasets, which live beside the project, never in it.
SHARED = REPO.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not all((SHARED / d).is_dir() for d in ("yelp_review_full", "squad", "dialogsum")),
                    reason=f"benchmark data not found in {SHARED}")
def test_suite_tiny_runs_every_arm(tmp_path):
    out = tmp_path / "tiny.json"
    run(["python", "-m", "benchmarks.run", "--quick", "--tiny", "--only", "arms", "qa", "summarization", "packing", "tokenization",
         "scaling", "--out", str(out)], cwd=REPO)
    results = json.loads(out.read_text())

    recipe, ftpipe = results["arms"]["recipe"], results["arms"]["ftpipe"]
    assert recipe["tokens_per_train_row"] == 512 and ftpipe["tokens_per_train_row"] < 512
    assert recipe["accuracy_base"] == ftpipe["accuracy_base"]  # same model, same seeded head: same predictions
    for arm in (recipe, ftpipe):  # each phase's own peak, never above the process's
        phases = [arm[f"{phase}_peak_rss_mb"] for phase in ("tokenize", "eval_base", "train", "eval_tuned")]
        assert all(0 < peak <= arm["peak_rss_mb"] for peak in phases)
    assert results["summary"]["tokenization"] is not None

    qa = results["qa"]
    assert qa["recipe"]["tokens_per_train_feature"] == 512 and qa["ftpipe"]["tokens_per_train_feature"] < 512
    assert qa["recipe"]["eval_questions"] == qa["ftpipe"]["eval_questions"] == 8  # the same questions in both
    assert all(0 <= qa[arm]["f1_tuned"] <= 100 for arm in qa)

    summ = results["summarization"]
    assert set(summ) == {"recipe", "ftpipe_lora", "ftpipe_qlora"}
    assert len({summ[arm]["eval_dialogues"] for arm in summ}) == 1
    assert all(summ[arm]["generated_tokens"] > 0 and 0 <= summ[arm]["rougeL"] <= 1 for arm in summ)
    assert set(results["summary"]) >= {"qa", "summarization"}

    packing = results["packing"]  # the same batches of the same rows: the same real tokens, none wasted when packed
    assert len({packing[arm]["real_tokens"] for arm in packing}) == 1
    assert packing["packed"]["padding_waste"] == 0 < packing["padded"]["padding_waste"]
    assert packing["packed"]["train_loss"] == pytest.approx(packing["padded"]["train_loss"], rel=1e-2)
    assert set(results["summary"]["packing"]) >= {"real_tokens_per_s", "real_tokens_per_cpu_s"}

    points = results["scaling"]["points"]
    assert {p["task"] for p in points} == {"classification", "qa", "summarization"}
    by_rows = json.loads((tmp_path / "tiny-scaling-rows.json").read_text())  # what benchmarks/dvc.yaml plots
    assert [row["rows"] for row in by_rows] == [40, 80]
    assert all(row["qa_train_s"] > 0 and row["summarization_train_peak_rss_mb"] > 0 for row in by_rows)

"""End to end: the tiny entity tagger through every stage with `dvc repro`, then used as a user would."""

from __future__ import annotations

import json

import pytest

from conftest import paths_touched_by_commits, run

pytestmark = pytest.mark.slow
# src/ftpipe/metrics/entities/: where the task's metric lived when those commits were made (it is in the package now).
TASK_COMMITS_MAY_TOUCH = ("src/ftpipe/tasks/token_classification/", "src/ftpipe/metrics/entities/", "conf/", "tests/",
                          "README.md", "benchmarks/", "scripts/tweet_spans.py", ".gitignore", "dvc.lock", "params.yaml")


def test_tuned_tagger_beats_the_base_on_entity_f1(ner_pipeline):
    base = json.loads((ner_pipeline / "metrics/base.json").read_text())
    tuned = json.loads((ner_pipeline / "metrics/tuned.json").read_text())
    assert list(tuned)[0] == "f1" and {"precision", "recall", "macro_f1", "token_accuracy"} <= set(tuned)
    assert tuned["f1"] > base["f1"] + 0.3, (base, tuned)
    details = json.loads((ner_pipeline / "metrics/details/tuned.json").read_text())
    assert set(details["per_type"]) == {"PER", "LOC", "ORG"} and details["entities_total"] > 100
    assert "entities_total" not in tuned  # a count: details only
    rows = [json.loads(line) for line in (ner_pipeline / "predictions/tuned.jsonl").read_text().splitlines()]
    assert all(len(r["predicted_tags"]) == len(r["reference_tags"]) and 0 <= r["score"] <= 1 for r in rows)
    for row in rows:  # entities point into the input, where they say
        assert all(row["input"][e["start"]:e["end"]] == e["text"] for e in row["entities"])
    assert "tags_repaired" in json.loads((ner_pipeline / "metrics/preprocess.json").read_text())["train"]


def test_predict_prints_entities_with_character_offsets(ner_pipeline):
    text = "Anna Berg flew to Oslo on Monday ."
    out = run(["ftpipe-predict", "--model", "models/tuned", "--text", text], ner_pipeline).stdout
    assert out.startswith("input-1\t") and "[" in out, out
    rows = [json.loads(line) for line in run(["ftpipe-predict", "--model", "models/tuned", "--text", text, "--json"], ner_pipeline).stdout.splitlines()]
    assert rows[0]["entities"], rows
    assert all(text[e["start"]:e["end"]] == e["text"] for e in rows[0]["entities"])
    # Pre-split tokens (no tags needed) from stdin.
    tokens = run("echo '{\"id\": \"t1\", \"tokens\": [\"Omar\", \"Khan\", \"works\", \"for\", \"Globex\", \".\"]}' | "
                 "ftpipe-predict --model models/tuned --file - --json", ner_pipeline).stdout
    assert json.loads(tokens)["id"] == "t1"


def test_model_card_loads_the_tagger_with_plain_transformers(ner_pipeline, tmp_path):
    from cards import card_parts, follow_card

    meta, _, _ = card_parts(ner_pipeline / "models/tuned/README.md")
    assert meta["pipeline_tag"] == "token-classification" and meta["metrics"] == ["seqeval"]
    assert "entity_group" in follow_card(ner_pipeline / "models/tuned", tmp_path)


def test_the_task_was_added_without_editing_a_generic_module():
    """The plug-in contract: the commits that added token classification touch only its package, its metric,
    conf/, tests/ and the README (the contract fix before them is its own commit)."""
    touched = paths_touched_by_commits("Token classification")
    assert touched and all(path.startswith(TASK_COMMITS_MAY_TOUCH) for path in touched), sorted(set(touched))

"""End to end: the tiny QA experiment through every stage with `dvc repro` on a SQuAD-format fixture
with several articles, a wrong answer_start and unanswerable questions."""

from __future__ import annotations

import json

import pytest

from conftest import run

pytestmark = pytest.mark.slow


def test_qa_repro_counts_repairs_and_tuned_beats_base(qa_pipeline):
    pre = json.loads((qa_pipeline / "metrics/preprocess.json").read_text())
    assert pre["train"]["records"] == 35 and pre["train"]["answer_start_repaired"] == 1
    assert pre["train"]["unanswerable"] == 5
    base = json.loads((qa_pipeline / "metrics/base.json").read_text())
    tuned = json.loads((qa_pipeline / "metrics/tuned.json").read_text())
    assert "NoAns_f1" in tuned and "HasAns_exact_match" in tuned and "total" not in tuned  # counts: details only
    assert json.loads((qa_pipeline / "metrics/details/tuned.json").read_text())["total"] == 35
    assert tuned["f1"] > base["f1"] + 10, (base, tuned)
    rows = [json.loads(line) for line in (qa_pipeline / "predictions/tuned.jsonl").read_text().splitlines()]
    assert all(0 <= r["score"] <= 1 and r["input"].startswith(r["input"].split(" | ")[0]) for r in rows)
    report = (qa_pipeline / "reports/compare.md").read_text()
    assert "| f1 |" in report and "## Fixed by tuning" in report


def test_predict_entry_point(qa_pipeline):
    out = run(["ftpipe-predict", "--model", "models/tuned", "--context",
               "Norland is a small country in the north. Its capital is Vesta, a city built on the river Aro.",
               "--question", "What is the capital of Norland?"], qa_pipeline).stdout
    assert out.startswith("input-1\t") and "score=" in out


def test_editing_qa_postprocessing_makes_evaluate_stale(qa_pipeline):
    """A fix to the span search reruns evaluation (its code deps cover the whole QA plug-in package)."""
    target = qa_pipeline / "src/ftpipe/tasks/qa/postprocess.py"
    original = target.read_text()
    assert json.loads(run(["dvc", "status", "--json"], qa_pipeline).stdout) == {"summary": ["always changed"]}  # only the summary, always run
    try:
        target.write_text(original + "\n# a fix to the span search\n")
        status = run(["dvc", "status"], qa_pipeline).stdout
        assert "evaluate@base" in status and "evaluate@tuned" in status and "src/ftpipe/tasks/qa" in status, status
    finally:
        target.write_text(original)


def test_predict_from_a_file_of_questions_to_csv(qa_pipeline, tmp_path):
    import csv

    context = "Norland is a small country in the north. Its capital is Vesta, a city built on the river Aro."
    questions = [{"id": "q1", "context": context, "question": "What is the capital of Norland?"},
                 {"id": "q2", "context": context, "question": "Which river is Vesta built on?"}]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    run(["ftpipe-predict", "--model", "models/tuned", "--file", str(tmp_path / "q.jsonl"), "--out", str(tmp_path / "a.csv")], qa_pipeline)
    rows = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert [r["id"] for r in rows] == ["q1", "q2"] and set(rows[0]) == {"id", "question", "prediction", "start", "probability"}
    for row in rows:  # a span of the context, where it says
        start = int(row["start"])
        assert start < 0 or context[start:start + len(row["prediction"])] == row["prediction"]


def test_documented_qa_snippet(qa_pipeline):
    from cards import docs_snippet, run_python

    assert run_python(docs_snippet("qa"), qa_pipeline).startswith("answer: ")


def test_qa_model_card_loads_the_model_from_a_copy(qa_pipeline, tmp_path):
    from cards import card_parts, follow_card

    meta, _, _ = card_parts(qa_pipeline / "models/tuned/README.md")
    assert meta["pipeline_tag"] == "question-answering" and meta["metrics"] == ["exact_match", "f1"]
    assert follow_card(qa_pipeline / "models/tuned", tmp_path).strip()  # an answer span, from the context

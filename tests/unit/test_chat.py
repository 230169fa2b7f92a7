"""The chat plug-in: the three conversation formats, the loss mask under two chat templates, oldest turns
dropped first, records to answer, and the scores."""

from __future__ import annotations

from collections import Counter

import pytest

from ftpipe.params import validate
from ftpipe.tasks import get_task
from ftpipe.tasks.base import RecordError
from ftpipe.tasks.chat import IGNORE

SYSTEM, Q1, A1, Q2, A2 = "Be brief.", "What colour is the lamp?", "The lamp is red.", "And the boat?", "The boat is blue."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": Q1}, {"role": "assistant", "content": A1},
            {"role": "user", "content": Q2}, {"role": "assistant", "content": A2}]


def make_task(**overrides):
    return get_task(validate({"task": {"name": "chat", "type": "chat", **overrides}}, ("task",)).task)


@pytest.fixture(scope="module")
def tiny():
    from ftpipe.models.sources import tiny_tokenizer

    return tiny_tokenizer("llama", 800)


def prepared(tiny, template, **overrides):
    import copy

    task, tokenizer = make_task(chat_template=template, **overrides), copy.deepcopy(tiny)
    task.prepare(tokenizer)
    return task, tokenizer


def features(task, tokenizer, messages, split="train"):
    import datasets

    ds = datasets.Dataset.from_list([{"id": "c1", "messages": messages, "references": [messages[-1]["content"]]}])
    return task.tokenize(ds, tokenizer, split, None, 10)


def test_the_three_formats_give_the_same_conversation():
    task = make_task()
    openai = task.clean({"id": "a", "messages": MESSAGES[:3]}, None)
    sharegpt = task.clean({"id": "a", "conversations": [{"from": "system", "value": SYSTEM}, {"from": "human", "value": Q1},
                                                        {"from": "gpt", "value": A1}]}, None)
    alpaca = task.clean({"id": "a", "system": SYSTEM, "instruction": "What colour is the lamp", "input": "?", "output": A1}, None)
    assert openai == sharegpt == {"id": "a", "messages": MESSAGES[:3], "references": [A1]}
    assert alpaca["messages"][1]["content"] == "What colour is the lamp\n\n?" and alpaca["references"] == [A1]
    # A JSON list in a CSV cell, extra references scored too
    assert task.clean({"messages": '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]',
                       "references": ["hey"]}, None)["references"] == ["hello", "hey"]


def test_consecutive_turns_are_merged_and_counted_and_trailing_turns_dropped():
    task = make_task()
    turns = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"},
             {"role": "user", "content": "left unanswered"}]
    row = task.clean({"messages": turns}, None)
    assert row["messages"] == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"}]
    assert task.stats == Counter({"turns_merged": 1, "trailing_turns_dropped": 1})
    with pytest.raises(RecordError, match="turn 2: a second user turn in a row"):
        make_task(consecutive_turns="error").clean({"messages": turns}, None)


@pytest.mark.parametrize("template, marker", [("chatml", "<|im_end|>"), ("zephyr", "<|endoftext|>")])
def test_only_the_assistants_words_and_end_of_turn_are_learned(tiny, template, marker):
    task, tokenizer = prepared(tiny, template)
    row = features(task, tokenizer, MESSAGES)[0]
    ids, labels = row["input_ids"], row["labels"]
    text = tokenizer.decode(ids)
    assert SYSTEM in text and Q1 in text and Q2 in text  # the whole conversation is there
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current)), current.clear()
    runs += [tokenizer.decode(current)] if current else []
    assert runs == [A1 + marker, A2 + marker], runs  # system, user and template markup all -100
    last = features(make_task(chat_template=template, train_on="last_assistant"), tokenizer, MESSAGES)[0]
    assert tokenizer.decode([t for t, label in zip(last["input_ids"], last["labels"]) if label != IGNORE]) == A2 + marker
    # Evaluation: the prompt is the conversation before the last answer, with the generation prompt.
    prompt = tokenizer.decode(features(task, tokenizer, MESSAGES, "eval")[0]["input_ids"])
    assert prompt.rstrip().endswith(Q2 + marker + ("\n<|im_start|>assistant" if template == "chatml" else "\n<|assistant|>"))


def test_a_long_conversation_loses_its_oldest_exchange_first_and_keeps_the_system_prompt(tiny):
    task, tokenizer = prepared(tiny, "chatml")
    full = len(features(task, tokenizer, MESSAGES)[0]["input_ids"])
    short_task, _ = prepared(tiny, "chatml", max_length=full - 1)
    row = features(short_task, tokenizer, MESSAGES)[0]
    text = tokenizer.decode(row["input_ids"])
    assert SYSTEM in text and Q1 not in text and A2 in text and len(row["input_ids"]) < full
    tiny_task, _ = prepared(tiny, "chatml", max_length=16)
    assert len(features(tiny_task, tokenizer, MESSAGES)) == 0  # the last exchange alone does not fit: not trained on, not cut


def test_a_conversation_to_answer_gets_its_system_prompt_and_a_placeholder_reply():
    task = make_task()
    record = task.chat_record({"messages": [{"role": "user", "content": "hi"}]}, "Be brief.")
    assert task.clean(record, None)["messages"][:2] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    shared = task.chat_record({"conversations": [{"from": "system", "value": "Mine."}, {"from": "human", "value": "hi"}]}, "Be brief.")
    assert task.clean(shared, None)["messages"][0]["content"] == "Mine."  # its own system prompt stays
    assert task.clean(task.prediction_record({"instruction": "Say hi."}), None)["messages"][-1]["role"] == "assistant"


def test_token_f1_exact_match_and_rouge_take_the_best_reference():
    from ftpipe.tasks.chat.scores import example_scores, token_f1

    assert token_f1("The lamp is red.", "the lamp is RED") == 1.0
    assert token_f1("red", "the lamp is red") == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    scores = example_scores("The boat is blue!", ["No idea.", "the boat is blue"])
    assert scores == {"token_f1": 1.0, "exact_match": 1.0, "rougeL": 1.0}


def test_headline_metrics_are_rebuilt_from_example_sums():
    import numpy as np

    task = make_task()
    rows = [{"token_f1": 1.0, "rougeL": 0.5, "exact_match": 1.0, "nll": 2.0, "reference_tokens": 2, "reference": "a b", "turns": 1},
            {"token_f1": 0.0, "rougeL": 0.1, "exact_match": 0.0, "nll": 6.0, "reference_tokens": 2, "reference": "c", "turns": 2}]
    stats, to_metrics = task.example_stats(rows)
    rebuilt = to_metrics(stats.sum(0), len(rows))
    for key, value in task.metrics(rows).items():
        if key in rebuilt:
            assert np.isclose(rebuilt[key], value), key
    assert np.isclose(rebuilt["perplexity"], np.exp(2.0))

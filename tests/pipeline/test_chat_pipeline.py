"""End to end: the tiny chat model through every stage with `dvc repro`, then used as a user would: ftpipe-predict
--chat on a file and in a conversation, and the card's plain-transformers snippet."""

from __future__ import annotations

import json

import pytest

from conftest import paths_touched_by_commits, run

pytestmark = pytest.mark.slow
TASK_COMMITS_MAY_TOUCH = ("src/ftpipe/tasks/chat/", "conf/", "tests/", "docs/", "README.md", "scripts/chat_from_shared.py",
                          ".gitignore", "params.yaml")


def test_tuned_chat_model_beats_the_base_and_keeps_its_template(chat_pipeline):
    base = json.loads((chat_pipeline / "metrics/base.json").read_text())
    tuned = json.loads((chat_pipeline / "metrics/tuned.json").read_text())
    assert list(tuned) == ["token_f1", "rougeL", "exact_match", "perplexity"], tuned
    assert tuned["token_f1"] > base["token_f1"] and tuned["perplexity"] < base["perplexity"] / 10, (base, tuned)
    compared = json.loads((chat_pipeline / "metrics/compare.json").read_text())
    assert compared["significance"]["token_f1"]["ci95"][0] > 0, compared  # the interval excludes 0
    rows = [json.loads(line) for line in (chat_pipeline / "predictions/tuned.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and all(0 <= r["score"] <= 1 and r["reference_tokens"] > 0 and "<|im_end|>" not in r["prediction"] for r in rows)
    template = (chat_pipeline / "models/tuned/chat_template.jinja").read_text()
    assert "<|im_start|>" in template  # task.chat_template: chatml, written into the tuned tokenizer
    assert "train" in json.loads((chat_pipeline / "metrics/preprocess.json").read_text())


def test_predict_chat_answers_a_file_and_a_conversation_like_the_cards_snippet(chat_pipeline, tmp_path):
    from cards import card_parts, follow_card

    question = "What is the capital of France?"
    conversation = {"id": "c1", "conversations": [{"from": "human", "value": question}]}  # ShareGPT, ending on the user's turn
    (tmp_path / "in.jsonl").write_text(json.dumps(conversation) + "\n")
    out = run(["ftpipe-predict", "--model", "models/tuned", "--chat", "--file", str(tmp_path / "in.jsonl"), "--json",
               "--precision", "fp32"], chat_pipeline).stdout
    answer = json.loads(out)["prediction"]
    assert json.loads(out)["id"] == "c1" and answer
    # The card's snippet (fp32, plain transformers, the tokenizer's own template) says the same, up to where its
    # longer generation runs past the end-of-turn marker the tiny tokenizer spells in pieces.
    meta, _, code = card_parts(chat_pipeline / "models/tuned/README.md")
    assert "<|im_start|>" in code and question in code and meta["pipeline_tag"] == "text-generation"
    card_answer = follow_card(chat_pipeline / "models/tuned", tmp_path).split("<|im_end|>")[0].strip()
    assert card_answer.startswith(answer), (card_answer, answer)
    # A conversation on stdin, a user turn a line: each answered, the second with the first in view.
    talk = run(f"printf '{question}\\nAnd the size of the lamp?\\n' | ftpipe-predict --model models/tuned --chat "
               "--system 'Be brief.' --precision fp32", chat_pipeline).stdout.splitlines()
    assert len(talk) == 2 and all(talk), talk
    refused = run(["ftpipe-predict", "--model", "models/tuned", "--system", "Be brief."], chat_pipeline, check=False)
    assert refused.returncode == 1 and "give --chat too" in refused.stderr


def test_the_task_was_added_without_editing_a_generic_module():
    """The plug-in contract: the commits that added the chat task touch only its package, conf/, tests/, docs, the README
    and its data script (the contract change before them, ftpipe-predict --chat, is its own commit)."""
    touched = paths_touched_by_commits("Chat task")
    assert touched and all(path.startswith(TASK_COMMITS_MAY_TOUCH) for path in touched), sorted(set(touched))

"""Hostile or careless input (issue 15) through the functions that read, clean, train and report it:
fast, with at most a tiny model built on the fly.

The same cases also run through the preprocess stage in tests/unit/test_bad_input.py where the answer is an error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, train_record
from ftpipe.core.errors import ConfigError, DataError
from ftpipe.core.io import atomic_output, read_records

REVIEWS = {"text": "review_body", "label": "stars", "id": "review_id"}


def records(path: Path, columns: dict | None = None) -> list[dict]:
    return [record for _, record in read_records(path, columns)]


def error(path: Path, columns: dict | None = None) -> str:
    with pytest.raises(DataError) as info:
        records(path, columns)
    return str(info.value)


# --- 1: a byte order mark -------------------------------------------------------


@pytest.mark.parametrize("name, content", [
    ("bom.csv", "review_id,review_body,stars\nr1,Great,5\n"),
    ("bom.jsonl", '{"review_id": "r1", "review_body": "Great", "stars": 5}\n'),
    ("bom.json", '[{"review_id": "r1", "review_body": "Great", "stars": 5}]'),
])
def test_byte_order_mark_is_stripped(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + content.encode())
    assert records(path, REVIEWS) == [{"id": "r1", "text": "Great", "label": 5 if name != "bom.csv" else "5"}]


# --- 2: column mapping ------------------------------------------------------------


@pytest.mark.parametrize("name, content", [
    ("reviews.csv", "review_id,review_body,stars\nr1,Great,5\n"),
    ("reviews.jsonl", '{"review_id": "r1", "review_body": "Great", "stars": 5}\n{"review_body": "Bad", "stars": 1}\n'),
])
def test_mapped_column_missing_names_file_and_column(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    columns = {**REVIEWS, "id": "reviewID_typo"}
    assert error(path, columns) == (f"{path}: column 'reviewID_typo' (data.columns.id) not found "
                                    "(columns: review_id, review_body, stars)")


def test_unmapped_column_named_like_a_mapped_field_is_an_error(tmp_path):
    csv_path, jsonl_path = tmp_path / "both.csv", tmp_path / "both.jsonl"
    csv_path.write_text("review_body,text,stars\nGreat,raw text,5\n")
    jsonl_path.write_text('{"review_body": "Great", "stars": 5}\n{"review_body": "Great", "text": "raw", "stars": 5}\n')
    columns = {"text": "review_body"}
    assert error(csv_path, columns) == (f"{csv_path}: column 'text' clashes with data.columns.text: 'review_body' "
                                        "(rename or drop one of them)")
    assert error(jsonl_path, columns) == (f"{jsonl_path}: record 2: column 'text' clashes with data.columns.text: "
                                          "'review_body' (rename or drop one of them)")
    # Mapping a field to itself, or swapping two columns, is no clash.
    assert records(csv_path, {"text": "text"})[0]["text"] == "raw text"
    assert records(csv_path, {"text": "review_body", "review_body": "text"})[0] == {"text": "Great", "review_body": "raw text", "stars": "5"}


def test_duplicated_csv_header_is_an_error(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("text,label,text\na,1,b\n")
    assert error(path) == f"{path}: column 'text' appears 2 times in the header"


def test_integer_id_zero_is_kept_as_a_string(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text('{"id": 0, "text": "zero", "label": 1}\n{"id": 7, "text": "seven", "label": 2}\n')
    assert [r["id"] for r in records(path)] == ["0", "7"]
    raw = tmp_path / "raw"
    for split in ("train", "eval"):
        (raw / split).mkdir(parents=True)
    (raw / "train/ids.jsonl").write_text(path.read_text())
    (raw / "eval/other.jsonl").write_text('{"id": 0, "text": "another", "label": 3}\n')
    clean = run_preprocess(raw, tmp_path)
    assert clean["train"] == ["0", "7"] and clean["eval"] == ["0"]


# --- 9: train and eval overlap ------------------------------------------------------


def review_task():
    from ftpipe.tasks.classification import Config, Task

    return Task(Config(labels=["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]))


def data_cfg(**values):
    from ftpipe.core.config import DataConfig

    return DataConfig(**values)


def run_preprocess(raw: Path, tmp_path: Path, **cfg) -> dict:
    """Preprocess `raw`; the cleaned ids per split (and the metrics, as '_metrics')."""
    import pandas as pd

    from ftpipe.preprocess import preprocess

    out, metrics = tmp_path / "clean", tmp_path / "metrics.json"
    preprocess(review_task(), data_cfg(**cfg), raw, out, metrics)
    ids = {split: pd.read_parquet(out / f"{split}.parquet")["id"].tolist() for split in ("train", "eval")}
    return {**ids, "_metrics": json.loads(metrics.read_text())}


def overlap_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    for split in ("train", "eval"):
        (raw / split).mkdir(parents=True)
    (raw / "train/a.jsonl").write_text('{"id": "a1", "text": "Great food", "label": 4}\n'
                                       '{"id": "a2", "text": "Cold soup", "label": 0}\n'
                                       '{"id": "a3", "text": "Fine", "label": 2}\n')
    # a2 again under its id; a3's text again under another id, in other case and spacing
    (raw / "eval/b.jsonl").write_text('{"id": "a2", "text": "Something else", "label": 0}\n'
                                      '{"id": "b2", "text": "  FINE ", "label": 2}\n'
                                      '{"id": "b3", "text": "New", "label": 3}\n')
    return raw


def test_train_eval_overlap_is_counted_and_warned(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ftpipe.preprocess"):
        result = run_preprocess(overlap_raw(tmp_path), tmp_path)
    assert result["_metrics"]["overlap"] == {"ids": 1, "texts": 1}
    assert "train and eval share 1 ids and 1 texts (first in eval: id 'a2')" in caplog.text


def test_train_eval_overlap_is_an_error_when_strict(tmp_path):
    raw = overlap_raw(tmp_path)
    with pytest.raises(DataError) as info:
        run_preprocess(raw, tmp_path, on_overlap="error")
    assert str(info.value) == f"{raw}: train and eval share 1 ids and 1 texts (first in eval: id 'a2'); data.on_overlap is 'error'"
    assert not (tmp_path / "clean").exists() and not (tmp_path / "metrics.json").exists()
    with pytest.raises(ConfigError, match=r"^params.yaml: data.on_overlap: must be 'warn' or 'error'$"):
        data_cfg(on_overlap="maybe")


def test_the_same_file_as_train_and_eval_overlaps_entirely(tmp_path):
    raw = tmp_path / "raw"
    for split in ("train", "eval"):
        (raw / split).mkdir(parents=True)
        (raw / split / "same.csv").write_text("text,label\nGreat,4\nBad,0\n")  # no ids: made up, not compared
    assert run_preprocess(raw, tmp_path)["_metrics"]["overlap"] == {"ids": 0, "texts": 2}


# --- 12: temporaries of killed stages ---------------------------------------------------


def test_atomic_output_removes_temporaries_of_dead_processes(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".tokenized.tmp-{dead_pid}"
    (stale / "train").mkdir(parents=True)
    live = tmp_path / f".tokenized.tmp-{os.getppid()}"  # a live process: a concurrent run, left alone
    live.mkdir()
    other = tmp_path / f".clean.tmp-{dead_pid}"  # another output's: not this call's business
    other.mkdir()
    with atomic_output(tmp_path / "tokenized") as tmp:
        tmp.mkdir()
    assert (tmp_path / "tokenized").is_dir()
    assert not stale.exists() and live.exists() and other.exists()


def test_temporaries_are_git_ignored(tmp_path):
    # In a fresh repository holding only the project's .gitignore: whatever else is ignored here does not count.
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text((REPO / ".gitignore").read_text())
    paths = ["data/.tokenized.tmp-1234", "metrics/.preprocess.json.tmp-9"]
    result = subprocess.run(["git", "check-ignore", *paths], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.split() == paths


# --- 13: user text in the Markdown report -----------------------------------------------


def test_compare_report_escapes_user_text(tmp_path):
    from ftpipe.compare import compare

    metrics = {"accuracy": 0.5}
    for name in ("base", "tuned"):
        (tmp_path / f"{name}.json").write_text(json.dumps(metrics))
    hostile = "x\n# Owned <script>alert(1)</script> | `rm` *b*"
    rows = {"base": 0.0, "tuned": 1.0}
    for name, score in rows.items():
        row = {"id": hostile, "input": "a|b\n\nc", "reference": "<b>ref</b>", "prediction": f"`{name}`", "score": score}
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(row) + "\n")
    for name, speed in (("base", 20.0), ("tuned", 40.0)):
        (tmp_path / f"{name}_timing.json").write_text(json.dumps({"samples_per_second": speed}))
    teacher = {"revision": "<i>rev</i>|x", "params": 2000, "metrics": {"accuracy": 0.75}, "timing": {"samples_per_second": 10.0}}
    (tmp_path / "record.json").write_text(json.dumps(train_record(method={"name": "distill", "type": "distill"}, trainable_params=1000, teacher=teacher)))
    report = tmp_path / "compare.md"
    compare(tmp_path / "base.json", tmp_path / "tuned.json", tmp_path / "base.jsonl", tmp_path / "tuned.jsonl",
            tmp_path / "delta.json", report, 5, (tmp_path / "base_timing.json", tmp_path / "tuned_timing.json"), tmp_path / "record.json")
    text = report.read_text()
    assert "<script>" not in text and "<b>" not in text and "<i>" not in text
    assert [line for line in text.splitlines() if line.startswith("#")] == [
        "# Base vs tuned", "## Evaluation speed", "## Fixed by tuning", "## Broken by tuning"]
    # A distilled student beside its base and its teacher, on the headline metric and on speed.
    assert "| tuned (student, 1,000 params) | 0.5 | 40 |" in text
    assert r"| teacher (2,000 params, &lt;i&gt;rev&lt;/i&gt;\|x) | 0.75 | 10 |" in text
    assert r"**x # Owned &lt;script&gt;alert(1)&lt;/script&gt; \| \`rm\` \*b\***: a\|b c" in text.splitlines()
    assert r"- reference: &lt;b&gt;ref&lt;/b&gt;" in text and r"- tuned: \`tuned\`" in text


# --- 11: stratified subsets smaller than the classes ----------------------------------------


def test_stratified_subset_smaller_than_the_classes_is_a_config_error():
    import datasets

    from ftpipe.datasets_io import draw

    data = datasets.Dataset.from_dict({"x": list(range(50)), "labels": [i % 5 for i in range(50)]})
    with pytest.raises(ConfigError) as info:
        draw(data, 3, seed=1, stratify=True, stratify_column="labels")
    assert str(info.value) == ("params.yaml: subset.stratify: a stratified subset of 3 of 50 examples needs one per class "
                               "in it and outside it, and there are 5 classes (use a size in 5..45 or subset.stratify=false)")
    single = datasets.Dataset.from_dict({"x": list(range(10)), "labels": [0] * 9 + [1]})
    with pytest.raises(ConfigError, match=r"^params.yaml: subset.stratify: cannot stratify a subset of 5 of 10 examples: "):
        draw(single, 5, seed=1, stratify=True, stratify_column="labels")
    assert len(draw(data, 5, seed=1, stratify=True, stratify_column="labels")) == 5


# --- 4: a summary longer than task.max_length allows -----------------------------------------


def summarization_task(**values):
    from ftpipe.params import validate
    from ftpipe.tasks import get_task

    return get_task(validate({"task": {"name": "dialogsum", "type": "summarization", **values}}, ("task",)).task)


def tokenize_one(task, dialogue: str, summary: str) -> dict:
    import datasets

    from ftpipe.models.sources import tiny_tokenizer

    tokenizer = tiny_tokenizer("llama", 800)
    rows = datasets.Dataset.from_list([{"id": "a", "dialogue": dialogue, "references": [summary]}])
    row = task.tokenize(rows, tokenizer, "train", None, 10)[0]
    before, after = task.prompt_parts(tokenizer)
    prompt = row["labels"].count(-100)
    return {**row, "dialogue_tokens": prompt - len(before) - len(after), "summary_tokens": len(row["labels"]) - prompt}


def test_long_summary_is_cut_and_counted_never_the_whole_dialogue(caplog):
    task = summarization_task(max_length=80)  # min_dialogue_tokens null: a quarter of it, 20
    dialogue = "\n".join(f"#Person1#: turn number {i} of the talk." for i in range(40))
    with caplog.at_level(logging.WARNING, logger="ftpipe.tasks.summarization"):
        row = tokenize_one(task, dialogue, "a summary that goes on and on " * 20)
    # The dialogue once lost every token to the summary: the row trained on an empty prompt.
    assert len(row["input_ids"]) == 80 and row["dialogue_tokens"] == 20
    assert "train: 1 of 1 summaries cut to fit task.max_length=80 beside task.min_dialogue_tokens=20 dialogue tokens" in caplog.text
    # A dialogue shorter than the floor stays whole; the summary takes the rest.
    short = tokenize_one(summarization_task(max_length=80, min_dialogue_tokens=30), "#Person1#: Hi.", "words " * 100)
    assert 0 < short["dialogue_tokens"] < 30 and len(short["input_ids"]) == 80


def test_max_length_without_room_for_a_summary_is_a_config_error():
    task = summarization_task(max_length=24, min_dialogue_tokens=20)
    with pytest.raises(ConfigError, match=r"^params.yaml: task.max_length: 24 leaves no room for a summary: the prompt takes "
                                          r"\d+ tokens and task.min_dialogue_tokens is 20$"):
        tokenize_one(task, "#Person1#: Hi.", "A greeting.")


# --- 8: tiny test models built twice ------------------------------------------------------------


def test_tiny_model_builds_are_byte_identical(tmp_path):
    import yaml

    models = {name: yaml.safe_load((REPO / "conf/model" / f"{name}.yaml").read_text())["tiny"] for name in ("tiny_bert", "tiny_gpt2", "tiny_llama")}
    code = ("import json, sys; from pathlib import Path; from ftpipe.models.sources import build_tiny\n"
            "for name, settings in json.loads(sys.argv[1]).items(): build_tiny(settings, Path(sys.argv[2]) / name)")
    for build in ("a", "b"):  # one process each: the hash seed that reordered the WordPiece vocabulary is per process
        subprocess.run([sys.executable, "-c", code, json.dumps(models), str(tmp_path / build)], check=True, capture_output=True)
    for name in models:
        for file in ("tokenizer.json", "model.safetensors", "config.json"):
            assert (tmp_path / "a" / name / file).read_bytes() == (tmp_path / "b" / name / file).read_bytes(), f"{name}/{file}"


# --- 5: task.max_length against the model ---------------------------------------------------------


@pytest.mark.parametrize("config, limit", [
    ({"model_type": "bert", "max_position_embeddings": 512}, 512),
    ({"model_type": "gpt2", "n_positions": 1024}, 1024),
    ({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, 512),  # positions start after the pad index
])
def test_max_length_is_checked_against_the_model_positions(tmp_path, config, limit):
    from ftpipe.tasks.qa import Config

    (tmp_path / "config.json").write_text(json.dumps(config))
    Config(max_length=limit).check_model_limit(tmp_path)
    with pytest.raises(ConfigError, match=rf"^params.yaml: task.max_length: {limit + 1} is more than the model's {limit} positions "):
        Config(max_length=limit + 1, doc_stride=128).check_model_limit(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "t5"}')  # relative positions: nothing to check
    Config(max_length=100_000).check_model_limit(tmp_path)


# --- 10, 11: ftpipe-predict on hostile or broken model folders; python -m ftpipe.params -------------------


def one_line_error(result) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def ftpipe_predict(tmp_path: Path, model: Path, *flags: str) -> subprocess.CompletedProcess:
    import yaml

    from ftpipe.params import compose

    params = tmp_path / "params.yaml"
    if not params.exists():
        cwd = os.getcwd()
        os.chdir(REPO)
        try:
            params.write_text(yaml.safe_dump(compose(["experiment=test_tiny_qa"]), sort_keys=False))
        finally:
            os.chdir(cwd)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "ftpipe.tools.predict", "--model", str(model), "--params", str(params), *flags,
                           "--context", "Paris is the capital of France.", "--question", "What is the capital?"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)


def test_predict_on_a_missing_or_pickle_only_folder_is_one_line(tmp_path):
    assert one_line_error(ftpipe_predict(tmp_path, tmp_path / "nope")) == f"error: {tmp_path / 'nope'}: model directory not found"
    pickle = tmp_path / "pickle"
    pickle.mkdir()
    (pickle / "config.json").write_text('{"model_type": "bert"}')
    (pickle / "pytorch_model.bin").write_bytes(b"not really a pickle")
    assert one_line_error(ftpipe_predict(tmp_path, pickle)) == (
        f"error: {pickle}: has no *.safetensors weights (model.safetensors; ftpipe loads weights only from safetensors)")


def test_predict_opens_only_the_safetensors_the_loader_would_and_needs_a_tokenizer_and_the_tasks_head(tmp_path):
    """Issue 29: an adapter's adapter_model.bin beside any .safetensors reached torch.load; a folder without tokenizer
    files predicted [UNK] for every word with exit 0; a QA model under classification params predicted from a fresh head."""
    import shutil

    from ftpipe.models.sources import build_tiny

    model = tmp_path / "qa_model"
    build_tiny({"model_type": "bert", "vocab_size": 800, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 64}, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "architectures": ["BertForQuestionAnswering"]}))
    (tmp_path / "qa").mkdir()
    answered = ftpipe_predict(tmp_path / "qa", model)
    assert answered.returncode == 0, answered.stderr  # the QA head under QA params: answers
    classification = tmp_path / "classification"
    classification.mkdir()
    import yaml

    from ftpipe.params import compose

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        (classification / "params.yaml").write_text(yaml.safe_dump(compose(["experiment=test_tiny"]), sort_keys=False))
    finally:
        os.chdir(cwd)
    (model / "ftpipe_train.json").write_text(json.dumps(train_record()))  # tuned by ftpipe: its head is its task's
    line = one_line_error(ftpipe_predict(classification, model))
    assert "a BertForQuestionAnswering model, but" in line and "task.type classification" in line and "--params" in line

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "task_type": "QUESTION_ANS"}')
    (adapter / "adapter_model.bin").write_bytes(b"not really a pickle")
    shutil.copy2(model / "model.safetensors", adapter / "unrelated.safetensors")  # a glob for *.safetensors would pass
    shutil.copy2(model / "tokenizer.json", adapter / "tokenizer.json")
    assert "has no *.safetensors weights (adapter_model.safetensors;" in one_line_error(ftpipe_predict(tmp_path / "qa", adapter))

    no_tokenizer = tmp_path / "no_tokenizer"
    shutil.copytree(model, no_tokenizer)
    (no_tokenizer / "ftpipe_train.json").unlink()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (no_tokenizer / name).unlink(missing_ok=True)
    assert "has no tokenizer (tokenizer.json, tokenizer_config.json)" in one_line_error(ftpipe_predict(tmp_path / "qa", no_tokenizer))


@pytest.mark.parametrize("model_type", ["bert", "not-in-transformers"])
def test_predict_never_takes_trust_from_the_model_folder(tmp_path, model_type):
    """A folder that ships code (auto_map -> evil.py) and says it is trusted: the code never runs without the flag."""
    from ftpipe.models.sources import build_tiny

    model = tmp_path / "model"
    build_tiny({"model_type": "bert", "vocab_size": 800, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 64}, model)
    marker = tmp_path / "PWNED"
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                   "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n"
                                   "from transformers import BertForQuestionAnswering as EvilQA, PreTrainedTokenizerFast as EvilTokenizer\n")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type=model_type, auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                                                   "AutoModelForQuestionAnswering": "evil.EvilQA"})
    (model / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "auto_map": {"AutoTokenizer": [None, "evil.EvilTokenizer"]}}))
    (model / "ftpipe_source.json").write_text('{"trust_remote_code": true}')
    result = ftpipe_predict(tmp_path, model)
    assert not marker.exists(), "code shipped in the model folder ran"
    if model_type == "bert":  # transformers has its own code for it: the folder's is ignored, the model loads
        assert result.returncode == 0 and result.stdout.startswith("input-1\t"), result.stderr
    else:  # only the folder's code could load it: refused, in one line that says how to opt in
        assert one_line_error(result).startswith(f"error: {model}: The repository {model} contains custom code which must be executed")


@pytest.mark.parametrize("override, expected", [
    ("train.lrr=1", "error: Could not override 'train.lrr'. To append to your config use +train.lrr=1"),
    ("experiment=nope", "error: In 'config': Could not find 'experiment/nope' Available options in 'experiment': "),
    ("train.lr=[1", "error: overrides train.lr=[1: no viable alternative at input '[1'"),
])
def test_mistyped_override_is_one_line(tmp_path, override, expected):
    import shutil

    shutil.copytree(REPO / "conf", tmp_path / "conf")
    result = subprocess.run([sys.executable, "-m", "ftpipe.params", override], cwd=tmp_path, capture_output=True, text=True)
    assert one_line_error(result).startswith(expected)
    assert not (tmp_path / "params.yaml").exists()


# --- 6, 7: a diverging run stops; the train loss covers the whole run ---------------------------------------


def trainer_state(log_history, global_step, max_steps=100):
    from transformers import TrainerControl, TrainerState

    return TrainerState(log_history=log_history, global_step=global_step, max_steps=max_steps), TrainerControl()


def test_divergence_guard_stops_on_a_non_finite_loss_or_grad_norm():
    from transformers import TrainingArguments

    from ftpipe.core.errors import FtpipeError
    from ftpipe.guards import DivergenceGuard

    args = TrainingArguments(output_dir="unused", learning_rate=1e6, report_to=[])
    state, control = trainer_state([], 30)
    DivergenceGuard().on_log(args, state, control, logs={"loss": 2.3, "grad_norm": 1.5, "learning_rate": 1e6})
    # The Trainer filters NaN step losses out of `loss`: a run with NaN weights can log a finite loss and a NaN grad norm.
    with pytest.raises(FtpipeError) as info:
        DivergenceGuard().on_log(args, state, control, logs={"loss": 0.0, "grad_norm": float("nan")})
    assert str(info.value) == ("training diverged at step 30: grad_norm is nan (train.lr=1e+06); lower train.lr or check "
                               "the data (the previous outputs are kept)")
    with pytest.raises(FtpipeError, match="loss is inf"):
        DivergenceGuard().on_log(args, state, control, logs={"loss": float("inf")})


def test_run_loss_is_the_step_weighted_mean_of_every_logged_window():
    from ftpipe.guards import RunLoss

    # Windows of 10, 10 and a last one of 5 steps (closed by the last step); an evaluation between them.
    history = [{"loss": 3.0, "step": 10}, {"loss": 2.0, "step": 20}, {"eval_loss": 9.0, "step": 20}, {"loss": 1.0, "step": 25},
               {"train_loss": 1.5, "step": 25}]  # the Trainer's figure: only the steps since a resume at step 20
    state, control = trainer_state(history, 25, max_steps=25)
    logs = {"train_loss": 1.5}
    RunLoss().on_log(None, state, control, logs=logs)
    assert logs["train_loss"] == history[-1]["train_loss"] == pytest.approx((30 + 20 + 5) / 25)
    # Checkpoints and the last step close a window, so that no step falls between logs.
    for step, should_save in ((20, True), (25, False)):
        state, control = trainer_state([], step, max_steps=25)
        control.should_save = should_save
        RunLoss().on_step_end(None, state, control)
        assert control.should_log


# --- issue 24: train.extra never shadows a named param; null max_grad_norm -----------------------------


def test_every_training_argument_set_from_a_param_is_kept_from_train_extra(monkeypatch, tmp_path):
    from ftpipe.core.config import SET_BY, TrainConfig
    from ftpipe.training import arguments

    monkeypatch.setattr(arguments, "TrainingArguments", lambda **kwargs: kwargs)
    kwargs = arguments.training_arguments(TrainConfig(max_grad_norm=None, validation_fraction=0.1, optim="adamw_torch"), tmp_path)
    fixed = {"output_dir", "use_cpu", "disable_tqdm", "average_tokens_across_devices", "save_total_limit"}  # no param sets them
    assert set(kwargs) - fixed <= set(SET_BY), set(kwargs) - fixed - set(SET_BY)
    assert kwargs["max_grad_norm"] == 0.0  # null: the Trainer clips only when > 0
    with pytest.raises(ConfigError, match=r"^params.yaml: train.extra.seed: set by train.seed; use that$"):
        TrainConfig(extra={"seed": 1})


# --- issue 24: a subset larger than the data ------------------------------------------------------------


def test_subset_larger_than_the_data_is_warned(caplog):
    import datasets

    from ftpipe.datasets_io import draw

    data = datasets.Dataset.from_dict({"x": list(range(30)), "example_id": [i // 3 for i in range(30)]})  # 10 examples
    with caplog.at_level(logging.WARNING, logger="ftpipe.datasets_io"):
        assert len(draw(data, 10, seed=1, stratify=False, group_column="example_id", key="subset.eval_size")) == 30
        assert not caplog.text  # exactly all of them: nothing to say
        assert len(draw(data, 5000, seed=1, stratify=False, key="subset.train_size")) == 30
        assert len(draw(data, 12, seed=1, stratify=False, group_column="example_id", key="subset.eval_size")) == 30
    assert caplog.messages == ["subset.train_size 5000: only 30 examples; using all of them",
                               "subset.eval_size 12: only 10 examples; using all of them"]


# --- issue 24: a kill or a failure at any step of atomic_output leaves a complete output ---------------

# In a child process: write `new` to the output, dying (os._exit, no cleanup runs) or raising right after
# call number `step` of os.replace / io._remove once the block is done.
KILLED_WRITE = """
import os, sys
from pathlib import Path
from ftpipe.core import io
how, step, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
calls, committing = [0], [False]
def after(real):
    def wrapper(*args):
        real(*args)
        if committing[0]:
            calls[0] += 1
            if calls[0] == step:
                if how == "kill":
                    os._exit(9)
                raise OSError("simulated failure")
    return wrapper
io.os.replace, io._remove = after(os.replace), after(io._remove)
try:
    with io.atomic_output(out) as tmp:
        tmp.mkdir()
        (tmp / "part1").write_text("new")
        (tmp / "part2").write_text("new")
        committing[0] = True
except OSError:
    sys.exit(3)
"""


@pytest.mark.parametrize("how", ["kill", "raise"])
@pytest.mark.parametrize("step", [1, 2, 3])  # after: the old output's rename aside, the new one's into place, the aside's removal
def test_atomic_output_keeps_a_complete_output_at_every_step(tmp_path, how, step):
    from ftpipe.core.io import _remove_stale

    out = tmp_path / "tokenized"
    out.mkdir()
    for part in ("part1", "part2"):
        (out / part).write_text("old")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", KILLED_WRITE, how, str(step), str(out)], env=env, check=False)

    def complete() -> str:
        contents = {p.name: p.read_text() for p in out.iterdir()}
        assert contents in ({"part1": "old", "part2": "old"}, {"part1": "new", "part2": "new"}), contents
        return contents["part1"]

    if how == "raise" or step > 1:  # killed after the first rename, only the aside copy is complete until cleanup
        complete()
    _remove_stale(out)  # the next run's cleanup
    assert complete() == ("new" if step > 1 else "old")
    assert [p.name for p in tmp_path.iterdir()] == ["tokenized"]


def test_evaluate_moves_the_metrics_into_place_last(tmp_path, monkeypatch):
    from ftpipe import evaluate
    from ftpipe.core import results
    from ftpipe.core.records import TimingRecord

    class Task:
        def write_plots(self, rows, out_dir):
            (out_dir / "plot.csv").write_text("new")

    metrics, details, predictions, plots = (tmp_path / n for n in ("metrics.json", "details.json", "predictions.jsonl", "plots"))
    for path in (metrics, details, predictions):
        path.write_text("old")
    plots.mkdir()
    (plots / "plot.csv").write_text("old")

    def disk_full(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(results, "write_json", disk_full)
    row = {"id": "a", "input": "x", "reference": "b", "prediction": "b", "score": 1.0}
    with pytest.raises(OSError):
        evaluate.write_outputs(Task(), [row], {"accuracy": 1.0}, TimingRecord(samples_per_second=1.0), metrics, predictions, plots,
                               tmp_path / "run", details)
    assert json.loads(predictions.read_text()) == row and (plots / "plot.csv").read_text() == "new"
    assert metrics.read_text() == "old" and details.read_text() == "old"  # the metrics never ran ahead of them


# --- issue 24: faults that escaped stage.run as tracebacks ------------------------------------------------


def stage_error(main, capsys) -> str:
    from ftpipe.core.stage import run

    with pytest.raises(SystemExit) as info:
        run(main)
    assert info.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_failed_move_into_place_is_one_line_naming_the_output(tmp_path, capsys, monkeypatch):
    import errno
    import shutil

    out = tmp_path / "tuned"

    def copy_fails():
        with atomic_output(out) as tmp:
            raise shutil.Error([(str(tmp_path / "final/model.safetensors"), str(tmp / "model.safetensors"),
                                 "[Errno 28] No space left on device")])

    assert stage_error(copy_fails, capsys) == (f"error: {out}: 1 file(s) not copied, the first {tmp_path}/final/model.safetensors: "
                                               "[Errno 28] No space left on device")

    def disk_full():  # an OSError with no file name, as a write() to a full disk raises
        with atomic_output(out) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device")

    assert stage_error(disk_full, capsys) == f"error: {out}: No space left on device"
    monkeypatch.setattr(sys, "argv", ["stages/train.py"])

    def elsewhere():
        raise OSError(errno.EIO, "Input/output error")

    assert stage_error(elsewhere, capsys) == "error: stage train: Input/output error"
    assert not list(tmp_path.iterdir())  # no temporary left behind


def test_a_checkpoint_that_cannot_be_read_or_written_is_one_line_naming_it(tmp_path, capsys):
    """Resume reads rng_state.pth (weights_only) and model.safetensors with the Trainer's own code; a full disk
    fails a checkpoint's write in safetensors' or torch's words. Each is one line naming the checkpoint."""
    import argparse
    import pickle
    from types import SimpleNamespace

    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import Trainer

    from ftpipe.training.resume import checkpoint_io

    checkpoints = tmp_path / "checkpoints/train"
    checkpoint = checkpoints / "checkpoint-20"
    checkpoint.mkdir(parents=True)
    torch.save({"python": argparse.Namespace(evil=True)}, checkpoint / "rng_state.pth")  # not plain tensors

    def resume():
        with checkpoint_io(checkpoints, checkpoint):
            Trainer._load_rng_state(SimpleNamespace(args=SimpleNamespace(world_size=1)), str(checkpoint))
            load_file(checkpoint / "model.safetensors")

    assert stage_error(resume, capsys).startswith(f"error: {checkpoint}: cannot resume from it: one of its files does not "
                                                  f"load (UnpicklingError: ")
    assert stage_error(resume, capsys).endswith(f"discard it with `rm -r {checkpoint}` and rerun")
    (checkpoint / "rng_state.pth").write_bytes(b"PK\x03\x04 truncated")  # a damaged zip
    assert "cannot resume from it" in stage_error(resume, capsys)
    (checkpoint / "rng_state.pth").unlink()
    for weights in (pickle.dumps({"HF_TOKEN": "hf_secret"}), b"\x10" + bytes(7) + b'{"a": 1'):  # a pickle; a cut header
        (checkpoint / "model.safetensors").write_bytes(weights)
        line = stage_error(resume, capsys)
        assert "cannot resume from it: one of its files does not load (SafetensorError: Error while deserializing header" in line
        assert "secret" not in line
    # A full disk, in the words safetensors and torch's zip writer used on a 16 KiB tmpfs.
    for full in (SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
                 RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
                 OSError(28, "No space left on device")):
        def write(full=full):
            with checkpoint_io(checkpoints, None):
                raise full
        assert re.fullmatch(rf"error: {checkpoints}: a checkpoint could not be written \(\d+ MiB left on its disk\): "
                            r"free space and rerun; it resumes from the last complete checkpoint", stage_error(write, capsys))
    for bug in (RuntimeError("a bug"), SafetensorError("Error while deserializing header")):  # not resuming: keeps its traceback
        with pytest.raises(type(bug)):
            with checkpoint_io(checkpoints, None):
                raise bug


def test_a_link_to_a_file_of_another_type_is_refused_without_reading_it(tmp_path):
    """`x.csv` -> `.env`: its first line (a token) once reached an error line and its fingerprint a git-tracked file."""
    from ftpipe.core.config import check_data_type
    from ftpipe.core.errors import ConfigError
    from ftpipe.core.io import READABLE

    secret = tmp_path / ".env"
    secret.write_text("HF_TOKEN=hf_FAKEtokenFORftpipeTESTS0123456789\n")
    link = tmp_path / "x.csv"
    link.symlink_to(secret)
    with pytest.raises(ConfigError, match=r"x.csv links to '.env', not a file of a type the task reads") as err:
        check_data_type("data.files.train", str(link), READABLE)
    assert "hf_FAKE" not in str(err.value)
    real = tmp_path / "reviews.csv"
    real.write_text("text,label\nGood,1\n")
    (tmp_path / "mine.csv").symlink_to(real)
    check_data_type("data.files.train", str(tmp_path / "mine.csv"), READABLE)  # a link to a CSV is a CSV


def test_column_names_in_an_error_line_are_escaped_and_cut():
    """A header with a terminal escape sequence or a long cell reaches an error line inert and short."""
    from ftpipe.core.errors import listed

    line = listed(["\x1b[2J\x1b[31mred", "x" * 500, "ok", "_line"])
    assert "\x1b" not in line and "\\x1b[2J\\x1b[31mred" in line
    assert "x" * 37 + "..." in line and "x" * 41 not in line and line.endswith(", ok")


def test_labels_with_a_terminal_escape_reach_error_lines_and_markdown_inert(capsys):
    """A config's labels went raw into `known: ...` of an error line and into the model card."""
    from ftpipe.core.config import DataConfig
    from ftpipe.core.errors import fail
    from ftpipe.core.markdown import inert
    from ftpipe.tasks import get_task
    from ftpipe.tasks.base import RecordError
    from ftpipe.tasks.classification import Config

    task = get_task(Config(name="t", type="classification", labels=["\x1b[2Jgood", "bad\x07"]))
    with pytest.raises(RecordError) as err:
        task.clean({"text": "fine", "label": "ok"}, DataConfig())
    with pytest.raises(SystemExit):
        fail(err.value)
    line = capsys.readouterr().err
    assert "\x1b" not in line and "\x07" not in line and "known: \\x1b[2Jgood, bad\\x07" in line, line
    assert inert("\x1b[2Jgood\x07") == "\\\\x1b\\[2Jgood\\\\x07"  # shown as \x1b[2Jgood\x07, not run


def test_composition_is_refused_only_while_a_live_dvc_process_uses_the_workspace(tmp_path):
    """DVC's own records decide: a running `dvc exp run` or stage refuses; a record a killed run left does not."""
    from ftpipe.workspace import RUN_DIR, STAGE_LOCKS, WorkspaceBusy, refuse_if_busy

    (tmp_path / RUN_DIR).mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        for pid in (int(dead.stdout), os.getpid()):  # ended, or this composition's own process
            (tmp_path / RUN_DIR / "workspace.json").write_text(json.dumps({"pid": pid}))
            (tmp_path / STAGE_LOCKS).write_text(json.dumps({"read": {"params.yaml": [{"pid": pid, "cmd": "dvc repro"}]}}))
            refuse_if_busy(tmp_path)
        (tmp_path / RUN_DIR / "workspace.run").write_text(json.dumps({"name": "busy-\x1b[31mrun"}))
        (tmp_path / RUN_DIR / "workspace.json").write_text(json.dumps({"pid": other.pid}))
        with pytest.raises(WorkspaceBusy, match=rf"experiment 'busy-\\x1b\[31mrun' is running .*PID {other.pid}"):
            refuse_if_busy(tmp_path)
        (tmp_path / RUN_DIR / "workspace.json").unlink()
        (tmp_path / STAGE_LOCKS).write_text(json.dumps({"write": {"models/tuned": {"pid": other.pid, "cmd": "dvc repro"}}}))
        with pytest.raises(WorkspaceBusy, match=f"a DVC command is running a stage in this workspace .PID {other.pid}"):
            refuse_if_busy(tmp_path)
    finally:
        other.kill()
        other.wait()


def test_a_tokenizer_larger_than_the_models_embeddings_is_one_line_at_load(tmp_path):
    """A custom tokenizer with ids past the embedding table was an IndexError in the first forward pass."""
    import yaml

    from ftpipe.models.loading import load_for_task, load_tokenizer
    from ftpipe.models.sources import build_tiny
    from ftpipe.tasks import get_task
    from ftpipe.tasks.classification import Config as TaskConfig

    build_tiny(yaml.safe_load((REPO / "conf/model/tiny_bert.yaml").read_text())["tiny"], tmp_path / "model")
    task = get_task(TaskConfig(name="t", type="classification", labels=["a", "b"]))
    tokenizer = load_tokenizer(tmp_path / "model", task)
    load_for_task(task, tmp_path / "model", tokenizer)  # the tokenizer it was built with: loads
    tokenizer.add_tokens(["zyxwv", "qqqqq"])
    with pytest.raises(ConfigError, match=rf"model.path: {tmp_path / 'model'}: its tokenizer has {len(tokenizer)} tokens, "
                                          rf"the model embeds {len(tokenizer) - 2}: use the tokenizer"):
        load_for_task(task, tmp_path / "model", tokenizer)


def test_an_unwritable_home_names_the_variable_that_moves_the_cache(tmp_path):
    """datasets caches what evaluate reads under HOME; a runner's HOME that is not a writable folder was an
    error naming HOME alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a", "b"]}), tmp_path / "rows.parquet")
    (tmp_path / "not-a-folder").write_text("")
    code = ("import sys, datasets; from ftpipe.core.stage import run\n"
            "run(lambda: datasets.Dataset.from_parquet(sys.argv[1]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_"))}
    results = {home: subprocess.run([sys.executable, "-c", code, str(tmp_path / "rows.parquet")], capture_output=True,
                                    text=True, env={**env, "HOME": str(tmp_path / home)})
               for home in ("home", "not-a-folder/home")}
    assert results["home"].returncode == 0, results["home"].stderr  # a writable HOME: the cache is made
    assert assert_one_line_error(results["not-a-folder/home"]) == (
        f"error: {tmp_path / 'not-a-folder/home'}: Not a directory (on the way to the Hugging Face cache "
        f"{tmp_path / 'not-a-folder/home/.cache/huggingface'}: set HF_HOME to a writable folder)")


def test_checkpoints_go_where_the_machine_says_a_folder_per_run_or_one_line(tmp_path, monkeypatch, capsys):
    """$FTPIPE_CHECKPOINTS puts a run's checkpoints on storage that outlives the machine, a folder per run
    (its fingerprint), so runs sharing it never discard each other's; a path that is no writable folder is one line."""
    from ftpipe.training.resume import CHECKPOINTS_ENV, checkpoint_location

    default = tmp_path / "checkpoints/train"
    monkeypatch.delenv(CHECKPOINTS_ENV, raising=False)
    assert checkpoint_location(default, "ab" * 32) == default
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "bucket"))
    first, second = checkpoint_location(default, "ab" * 32), checkpoint_location(default, "cd" * 32)
    assert (first, second) == (tmp_path / "bucket" / ("ab" * 8), tmp_path / "bucket" / ("cd" * 8)) and first.is_dir()
    assert not list(first.iterdir())  # the write test leaves nothing behind
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "a-file"))
    assert checkpoint_location(default, "ab" * 32, check=False) == tmp_path / "a-file" / ("ab" * 8)  # other ranks: no I/O
    line = stage_error(lambda: checkpoint_location(default, "ab" * 32), capsys)
    assert line == (f"error: {CHECKPOINTS_ENV}={tmp_path / 'a-file'}: not a writable folder (Not a directory): "
                    f"point it at one, or unset it to keep checkpoints in {default}")

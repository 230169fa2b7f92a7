"""Bad input never costs data: every broken file or config ends its stage with ONE clear line.

The corpus lives in tests/bad_inputs/<task>/. To add a case, add a row to DATA_CASES (a file of the
corpus, the experiment it runs under, and what the error line must say) or to CONFIG_CASES (params
overrides, the stage script to run, and what the error line must say). Stage scripts run in this
process (conftest.run_stage: the same main() and error handling, without a Python start-up per case)
in a throwaway repository; two tests go through `dvc repro` to show that the outputs of the previous
good run survive a failed stage.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import CORPUS, assert_one_line_error, digest, make_repo, run_stage, write_params

PREPROCESS = "python stages/preprocess.py --raw data/raw --out data/clean --metrics metrics/preprocess.json"
STAGES = {
    "download_data": "python stages/download_data.py --out data/raw",
    "download_model": "python stages/download_model.py --out models/base",
    "preprocess": PREPROCESS,
    "tokenize": "python stages/tokenize_text.py --clean data/clean --model tests/bad_inputs/model_512_positions --out data/tokenized",
    "compare": "python stages/compare.py " + " ".join(f"--{name} nope" for name in (
        "base-metrics", "tuned-metrics", "base-predictions", "tuned-predictions", "base-run", "tuned-run", "tuned-record",
        "out", "report", "speed")),  # params load first: the files are never read
    "evaluate": "python stages/evaluate_model.py --which tuned --model tests/bad_inputs/model_with_code --base models/base "
                "--data data/subset --clean data/clean --metrics metrics/tuned.json --predictions predictions/tuned.jsonl --plots plots/tuned "
                "--run-record runs/evaluate/tuned",
    "train": "python stages/train.py --data data/subset --base models/base --out models/tuned "
             "--live dvclive/train --checkpoints checkpoints/train --run-record runs/train",
}


@dataclass
class DataCase:
    file: str  # in tests/bad_inputs/<task>/
    expected: str  # substring of the one-line error (after the file name)
    record: int | None = None  # the record number the line must name
    task: str = "classification"
    experiment: str = "test_tiny"
    overrides: dict = field(default_factory=dict)  # params keys -> values, e.g. {"data.columns": {...}}
    content: bytes | None = None  # generated instead of read from the corpus (huge inputs)
    names_file: bool = True  # False: the error is about the split folder, not one file
    where: str | None = None  # the path the line must name, when it is neither the file nor the train folder


DATA_CASES = [
    DataCase("malformed.jsonl", "malformed JSON at column", record=2),
    DataCase("malformed.json", "malformed JSON at line 2"),
    DataCase("unbalanced_quote.csv", "malformed CSV", record=2),
    DataCase("extra_cells.csv", "3 cells for 2 columns", record=2),
    DataCase("missing_cells.csv", "1 cell for 2 columns", record=2),  # issue 24: the missing one became ""
    DataCase("misnamed_columns.csv", "field 'text': missing (columns: review, stars", record=1),
    DataCase("missing_label.jsonl", "field 'label': missing", record=1),
    DataCase("label_out_of_range.jsonl", "field 'label': label '7' out of range 0..4", record=2),
    DataCase("label_unknown_name.jsonl", "field 'label': unknown label 'very good'", record=2),
    DataCase("label_nan.jsonl", "field 'label': missing or invalid label None", record=1),
    DataCase("empty_text.csv", "field 'text': empty or missing text", record=2),
    DataCase("nul_text.jsonl", "field 'text': empty or missing text", record=2),  # issue 29: NUL bytes and a zero-width space trained
    DataCase("text_wrong_type.jsonl", "field 'text': empty or missing text", record=1),
    DataCase("non_utf8.csv", "not valid UTF-8 (byte 0xe9)", record=2),
    # issue 29: UTF-16 of ASCII is valid UTF-8 with NULs, whose column names were printed NULs and all
    DataCase("utf16.csv", "not UTF-8 text: it holds NUL bytes or a UTF-16 byte order mark (UTF-16? save it as UTF-8)"),
    DataCase("utf16_no_bom.csv", "not UTF-8 text: it holds NUL bytes or a UTF-16 byte order mark (UTF-16? save it as UTF-8)"),
    DataCase("duplicate_id.jsonl", "field 'id': duplicate id 'a'", record=2),
    DataCase("duplicate_key.jsonl", "key 'label' appears twice in one object", record=2),  # issue 29: the last one won
    DataCase("empty.csv", "file is empty"),
    DataCase("no_records.json", "no usable records", names_file=False),
    DataCase("huge_record.csv", "field larger than field limit", record=1,
             content=b"text,label\n" + b"x" * 200_000 + b",2\n"),
    # issue 15: column mapping, byte order marks, id 0, train/eval overlap
    DataCase("duplicate_header.csv", "column 'text' appears 2 times in the header"),
    DataCase("mapped_column_missing.csv", "column 'reviewID_typo' (data.columns.id) not found (columns: review_id, text, label)",
             overrides={"data.columns": {"id": "reviewID_typo"}}),
    DataCase("mapped_column_clash.jsonl", "column 'text' clashes with data.columns.text: 'review_body' (rename or drop one of them)",
             record=1, overrides={"data.columns": {"text": "review_body"}}),
    # The BOM must not hide the mapped id column: its duplicate is then found.
    DataCase("bom_duplicate_id.csv", "field 'id': duplicate id 'r1'", record=2, overrides={"data.columns": {"id": "review_id"}}),
    DataCase("duplicate_id_zero.jsonl", "field 'id': duplicate id '0'", record=2),  # 0 is an id, not "no id"
    DataCase("same_as_eval.jsonl", "train and eval share 10 ids and 10 texts (first in eval: id 'g0'); "
             "data.on_overlap is 'error'", overrides={"data.on_overlap": "error"}, where="data/raw:"),
]
QA, SUMMARIZATION = {"task": "qa", "experiment": "test_tiny_qa"}, {"task": "summarization", "experiment": "test_tiny_dialogsum"}
NER = {"task": "token_classification", "experiment": "test_tiny_ner"}
DATA_CASES += [
    DataCase("answer_not_in_context.json", "field 'answers.text': question 'q2': answer '300 statues' does not occur in the context",
             record=2, **QA),
    DataCase("empty_context.json", "field 'context': question 'q1': empty or missing context", record=1, **QA),
    DataCase("duplicate_question_id.json", "field 'id': duplicate id 'q1'", record=2, **QA),
    DataCase("missing_question.jsonl", "field 'question': question 'q2': empty or missing question", record=2, **QA),
    DataCase("answer_start_not_a_number.jsonl", "field 'answers.answer_start': question 'q1': answer_start 'twenty' is not a number",
             record=1, **QA),
    DataCase("answers_not_json.csv", "field 'answers': question 'q1': answers is not JSON", record=1, **QA),
    DataCase("no_paragraphs.json", "article 2 has no 'paragraphs' list", **QA),
    DataCase("non_utf8.json", "not valid UTF-8 (byte", **QA),
    # issue 15: SQuAD v1 has no unanswerable questions; a negative answer_start once passed the span check
    DataCase("missing_answers_v1.jsonl", "field 'answers': question 'q2': missing answers (SQuAD v1 questions all have one; "
             "task.version_2=true allows unanswerable ones)", record=2, overrides={"task.version_2": False}, **QA),
    DataCase("negative_answer_start.jsonl", "field 'answers.answer_start': question 'q2': answer_start -10 is negative",
             record=2, **QA),
    # issue 24: v1 has no unanswerable questions, whatever says so; v2's impossible questions have no answers
    *[DataCase(f"{name}_v1.jsonl", f"field 'answers': question 'q2': {says}SQuAD v1 has no unanswerable questions; "
               "task.version_2=true allows them)", record=2, overrides={"task.version_2": False}, **QA)
      for name, says in (("empty_answers", "no answer (answers is empty or blank; "), ("blank_answers", "no answer (answers is empty or blank; "),
                         ("impossible", "is_impossible is true ("))],
    DataCase("impossible_with_answers_v2.jsonl", "field 'answers': question 'q1': is_impossible is true but it has 1 answer(s) "
             "(drop them or the flag)", record=1, **QA),
    DataCase("duplicate_question_id_zero.json", "field 'id': duplicate id '0'", record=2, **QA),  # nested SQuAD: 0 is an id too
    DataCase("answer_start_float.jsonl", "field 'answers.answer_start': question 'q1': answer_start 36.7 is not a whole number",
             record=1, **QA),
    DataCase("answer_start_bool.jsonl", "field 'answers.answer_start': question 'q2': answer_start True is not a whole number",
             record=2, **QA),
    DataCase("missing_summary.jsonl", "field 'summary': no summary in any of summary", record=2, **SUMMARIZATION),
    DataCase("empty_dialogue.jsonl", "field 'dialogue': empty or missing dialogue", record=1, **SUMMARIZATION),
    DataCase("misnamed_columns.csv", "field 'dialogue': empty or missing dialogue (columns: id, conversation, summary", record=1,
             **SUMMARIZATION),
    # issue 21: token classification (CoNLL records are numbered by sentence; the line is in the message)
    DataCase("tag_not_in_labels.conll", "field 'tags': token 3 ('Paris', line 7): entity type 'GPE' of tag 'B-GPE' is not in "
             "task.labels (LOC, ORG, PER)", record=2, **NER),
    DataCase("i_after_o.conll", "field 'tags': token 2 ('Berg', line 5): I-PER follows O, so no entity starts with B-", record=2, **NER),
    DataCase("no_label_column.conll", "field 'tags': token 2 ('visited', line 2): no tag (a CoNLL line needs a label column", record=1, **NER),
    DataCase("non_utf8.conll", "line 4: not valid UTF-8 (byte 0xe9)", **NER),
    DataCase("length_mismatch.jsonl", "field 'tags': 3 tokens but 2 tags", record=1, **NER),
    DataCase("empty_sentence.jsonl", "field 'tokens': empty sentence (no tokens)", record=2, **NER),
    DataCase("tag_id_out_of_range.jsonl", "field 'tags': token 2 ('left'): tag id 9 out of range 0..6", record=1, **NER),
    DataCase("empty_token.jsonl", "field 'tokens': token 2 is empty, invisible or not a string (' ')", record=1, **NER),
]
CHAT = {"task": "chat", "experiment": "test_tiny_chat"}
DATA_CASES += [  # issue 31: conversations (the first record of each file is good)
    DataCase("unknown_role.jsonl", "field 'messages': turn 2: unknown role 'bot' (system, user, assistant; ShareGPT: human, gpt)",
             record=2, **CHAT),
    DataCase("empty_content.jsonl", "field 'messages': turn 2: empty assistant content", record=2, **CHAT),
    DataCase("no_assistant.jsonl", "field 'conversations': no assistant turn: nothing to learn or to score", record=2, **CHAT),
    DataCase("not_alternating.jsonl", "field 'messages': turn 2: a second user turn in a row (the turns do not alternate; "
             "task.consecutive_turns=merge joins them)", record=2, overrides={"task.consecutive_turns": "error"}, **CHAT),
    DataCase("multimodal_content.jsonl", "field 'messages': turn 1: content is a list of parts (multimodal?), not text", record=2, **CHAT),
    DataCase("system_not_first.jsonl", "field 'messages': turn 2: a system turn after the first turn", record=2, **CHAT),
    DataCase("content_not_text.jsonl", "field 'instruction/output': turn 2: content is int, not text", record=2, **CHAT),
    DataCase("no_conversation.jsonl", "field 'messages': no conversation: expected messages (OpenAI), conversations (ShareGPT) or "
             "instruction/output (Alpaca) (columns: id, dialog", record=2, **CHAT),
]

MODEL_WITHOUT_WEIGHTS = "tests/bad_inputs/model_without_weights"  # made by the fixture
MODEL_WITH_PICKLE = "tests/bad_inputs/model_with_pickle"  # only a pytorch_model.bin: refused
MODEL_512 = "tests/bad_inputs/model_512_positions"  # only a config.json: the tokenize stage checks it first
MODEL_WITH_CODE = "tests/bad_inputs/model_with_code"  # configs whose auto_map names code in the folder


@dataclass
class ConfigCase:
    id: str
    stage: str
    overrides: dict  # dotted params keys -> values (None deletes the key)
    expected: str


CONFIG_CASES = [
    ConfigCase("unknown_task", "preprocess", {"task.type": "poetry"}, "params.yaml: task.type: unknown task type 'poetry'"),
    ConfigCase("unknown_model_source", "download_model", {"model.source": "ftp"}, "params.yaml: model.source: unknown source 'ftp'"),
    ConfigCase("unknown_method", "train", {"method.type": "magic"}, "params.yaml: method.type: unknown method type 'magic'"),
    ConfigCase("method_misfits_task", "train", {"method.needs": ["causal_lm"]},
               "params.yaml: method: 'full' does not fit a classification task: it needs causal_lm, causal-LM rows, a prompt and its "
               "answer (a prefix of past key-values fits them) (task types that have it: chat, summarization)"),
    ConfigCase("method_needs_unknown", "train", {"method.needs": ["telepathy"]},
               "params.yaml: method.needs: unknown capability telepathy (known: example_label, causal_lm, position_free_labels)"),
    ConfigCase("negative_lr", "train", {"train.lr": -1e-5}, "params.yaml: train.lr: must be > 0"),
    ConfigCase("non_numeric_lr", "train", {"train.lr": "fast"}, "params.yaml: train.lr"),
    ConfigCase("batch_size_0", "train", {"train.batch_size": 0}, "params.yaml: train.batch_size: must be >= 1"),
    ConfigCase("missing_local_data", "download_data",
               {"data.source": "local", "data.files": {"train": ["nope/train.csv"], "eval": ["nope/eval.csv"]}},
               "params.yaml: data.files.train: file not found: nope/train.csv"),
    ConfigCase("missing_local_model", "download_model", {"model.source": "local", "model.path": "nope/model"},
               "params.yaml: model.path: directory not found: nope/model"),
    ConfigCase("model_without_weights", "download_model", {"model.source": "local", "model.path": MODEL_WITHOUT_WEIGHTS},
               "has no *.safetensors weights"),
    ConfigCase("model_with_pickle_weights", "download_model", {"model.source": "local", "model.path": MODEL_WITH_PICKLE},
               "has no *.safetensors weights"),
    # issue 15: 0 and 1 once switched truncation off, -5 ended in an OverflowError, 2048 in a RuntimeError at training
    *[ConfigCase(f"max_length_{n}", "preprocess", {"task.max_length": n}, f"params.yaml: task.max_length: must be >= 8, got {n}")
      for n in (0, 1, -5)],
    ConfigCase("max_length_beyond_the_model", "tokenize", {"task.max_length": 2048},
               f"params.yaml: task.max_length: 2048 is more than the model's 512 positions (max_position_embeddings in "
               f"{MODEL_512}/config.json): use task.max_length <= 512"),
    # issue 15: TrainingArguments' own names, checked at load rather than at train time
    ConfigCase("extra_unknown", "train", {"train.extra": {"foo": 1}},
               "params.yaml: train.extra.foo: not a TrainingArguments argument (see transformers' TrainingArguments)"),
    ConfigCase("extra_typo", "train", {"train.extra": {"logging_strategi": "no"}},
               "params.yaml: train.extra.logging_strategi: not a TrainingArguments argument (did you mean logging_strategy,"),
    ConfigCase("scheduler_unknown", "train", {"train.scheduler": "bogus"},
               "params.yaml: train.scheduler: unknown scheduler 'bogus' (linear, cosine, cosine_with_restarts,"),
    ConfigCase("optim_unknown", "train", {"train.optim": "bogus"},
               "params.yaml: train.optim: unknown optimizer 'bogus' (adamw_torch, adamw_torch_fused,"),
    # issue 24: two ids for one class name (labels match case-insensitively)
    ConfigCase("labels_repeated", "preprocess", {"task.labels": ["a", "a", "b"]},
               "params.yaml: task.labels: class name 'a' is listed twice"),
    ConfigCase("labels_repeated_case", "preprocess", {"task.labels": ["Good", "bad", "good"]},
               "params.yaml: task.labels: class name 'good' is listed twice (as 'Good': labels match ignoring case)"),
    # issue 24: train.extra shadowing a named param, ranges that failed late (numpy's seed) or not at all
    ConfigCase("extra_shadows_lr", "train", {"train.extra": {"learning_rate": 0.5}},
               "params.yaml: train.extra.learning_rate: set by train.lr; use that"),
    ConfigCase("negative_weight_decay", "train", {"train.weight_decay": -0.1}, "params.yaml: train.weight_decay: must be >= 0, got -0.1"),
    ConfigCase("max_grad_norm_0", "train", {"train.max_grad_norm": 0},
               "params.yaml: train.max_grad_norm: must be > 0, got 0.0 (null disables clipping)"),
    *[ConfigCase(f"seed_{seed}", "train", {"train.seed": seed}, f"params.yaml: train.seed: must be in 0..2**32-1 (numpy's seed range), got {seed}")
      for seed in (-1, 2**32)],
    # issue 22: padding-free packing is for causal-LM rows only
    ConfigCase("packing_classification", "train", {"train.packing": True},
               "params.yaml: train.packing: a classification task cannot pack (causal-LM tasks can: chat, summarization); set train.packing=false"),
    ConfigCase("negative_report_examples", "compare", {"evaluate.report_examples": -1},
               "params.yaml: evaluate.report_examples: must be >= 0, got -1"),
    ConfigCase("tokenize_batch_size_0", "tokenize", {"tokenize.batch_size": 0}, "params.yaml: tokenize.batch_size: must be >= 1, got 0"),
    # issue 29: a typo of a section name was ignored; a negative patience trained; one resample made an interval that missed the delta
    ConfigCase("section_typo", "train", {"trian.lr": 0.5}, "params.yaml: trian: unknown params section (did you mean train?)"),
    ConfigCase("negative_patience", "train", {"train.early_stopping_patience": -2},
               "params.yaml: train.early_stopping_patience: must be >= 0 (0: off), got -2"),
    ConfigCase("best_metric_not_validated", "train", {"train.best_metric": "eval_accuracy", "train.validation_fraction": 0.2},
               "params.yaml: train.best_metric: the validation split reports its loss only: eval_loss, got eval_accuracy"),
    ConfigCase("bootstrap_resamples_1", "compare", {"evaluate.bootstrap_resamples": 1},
               "params.yaml: evaluate.bootstrap_resamples: must be 0 (no intervals) or >= 100, got 1"),
    # issue 24: transformers' refusal of a folder that ships code, a traceback at evaluate
    ConfigCase("model_ships_code", "evaluate", {},
               f"params.yaml: model.trust_remote_code: {MODEL_WITH_CODE} ships code that must run to load it (auto_map in its "
               "config): set model.trust_remote_code=true only if you trust that code"),
    # issue 15: a Hub source on a machine without the Hub (the tests run with HF_HUB_OFFLINE=1)
    ConfigCase("hub_model_offline", "download_model", {"model.source": "hub", "model.path": "ftpipe-tests/no-such-model"},
               "params.yaml: model.path: the Hugging Face Hub is unreachable (offline, or no network) for 'ftpipe-tests/no-such-model': "
               "run `dvc repro download_model && dvc push` on a connected machine, then `dvc pull` here"),
    ConfigCase("hub_data_offline", "download_data", {"data.source": "hub", "data.hub_path": "ftpipe-tests/no-such-data"},
               "params.yaml: data.hub_path: the Hugging Face Hub is unreachable (offline, or no network) for 'ftpipe-tests/no-such-data': "
               "run `dvc repro download_data && dvc push` on a connected machine, then `dvc pull` here"),
]


def set_key(params: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = params
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A tiny-experiment repo whose preprocess stage ran once on good data."""
    repo = make_repo(tmp_path_factory.mktemp("bad") / "repo")
    for split in ("train", "eval"):
        (repo / "data/raw" / split).mkdir(parents=True)
        shutil.copy(CORPUS / "classification/good.jsonl", repo / "data/raw" / split / "good.jsonl")
    no_weights = repo / MODEL_WITHOUT_WEIGHTS
    no_weights.mkdir(parents=True)
    (no_weights / "config.json").write_text('{"model_type": "bert"}')
    pickle = repo / MODEL_WITH_PICKLE
    pickle.mkdir(parents=True)
    (pickle / "config.json").write_text('{"model_type": "bert"}')
    (pickle / "pytorch_model.bin").write_bytes(b"not really a pickle")
    (repo / MODEL_WITH_CODE).mkdir(parents=True)
    (repo / MODEL_WITH_CODE / "config.json").write_text('{"model_type": "not-in-transformers", "auto_map": {"AutoConfig": "evil.Config"}}')
    (repo / MODEL_WITH_CODE / "tokenizer_config.json").write_text('{"auto_map": {"AutoTokenizer": [null, "evil.Tokenizer"]}}')
    (repo / MODEL_512).mkdir(parents=True)
    (repo / MODEL_512 / "config.json").write_text('{"model_type": "bert", "max_position_embeddings": 512}')
    assert run_stage(PREPROCESS, repo).returncode == 0
    return repo


@pytest.fixture
def params(repo):
    """params.yaml of the repo, restored after the test."""
    path = repo / "params.yaml"
    saved = path.read_text()
    yield yaml.safe_load(saved)
    path.write_text(saved)


@pytest.mark.parametrize("case", DATA_CASES, ids=lambda c: f"{c.task}-{c.file}" if isinstance(c, DataCase) else None)
def test_bad_data_is_one_line_naming_file_record_field(repo, params, case):
    if case.experiment != "test_tiny":
        # That task's params, its local data files (absent from this repo) switched off: preprocess reads data/raw.
        params = write_params(repo, [f"experiment={case.experiment}"])
        params["data"].update(source="synthetic", files={}, eval_from_train=0.0, on_bad_record="error")
    for key, value in case.overrides.items():
        set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad_dir = repo / "data/raw/train"
    shutil.move(bad_dir / "good.jsonl", repo / "good.jsonl.saved")
    content = case.content if case.content is not None else (CORPUS / case.task / case.file).read_bytes()
    (bad_dir / case.file).write_bytes(content)
    before = digest([repo / "data/clean", repo / "metrics/preprocess.json"])
    try:
        result = run_stage(PREPROCESS, repo)
    finally:
        (bad_dir / case.file).unlink()
        shutil.move(repo / "good.jsonl.saved", bad_dir / "good.jsonl")
    where = case.where or "data/raw/train" + (f"/{case.file}" if case.names_file else "") + (f": record {case.record}:" if case.record else "")
    assert_one_line_error(result, where, case.expected)
    assert digest([repo / "data/clean", repo / "metrics/preprocess.json"]) == before


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.id)
def test_bad_config_is_one_line_naming_the_key(repo, params, case):
    for key, value in case.overrides.items():
        set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = digest([repo / "data/clean"])
    assert_one_line_error(run_stage(STAGES[case.stage], repo), case.expected)
    assert digest([repo / "data/clean"]) == before
    # Nothing half-written left behind: no models/base, no temporary sibling of it.
    assert not (repo / "models/base").exists()
    assert not list(repo.glob("**/.*.tmp-*"))


def test_unreadable_params_and_missing_paths_are_one_line(repo, params):
    (repo / "params.yaml").write_text("train:\n  lr: [1e-5\n")
    assert_one_line_error(run_stage(STAGES["train"], repo), "params.yaml: not valid YAML at line")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_stage(PREPROCESS.replace("--raw data/raw", "--raw data/nowhere"), repo)
    assert_one_line_error(result, "data/nowhere/train: No such file or directory")



"""Sidecar records go through ftpipe.core.records only, and an old or broken one is one clear line."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from ftpipe.core import records
from ftpipe.core.errors import DataError

REPO = Path(__file__).resolve().parents[2]
NAMES = {record.FILENAME for record in records.ALL}


def literals_naming_records(source: str) -> list[str]:
    """String constants (docstrings aside) that name a record file."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and any(name in node.value for name in NAMES)]


def test_only_the_records_module_names_a_record_file():
    found = {}
    for path in sorted([*(REPO / "src" / "ftpipe").rglob("*.py"), *(REPO / "stages").glob("*.py")]):
        if path.name != "records.py" and (hits := literals_naming_records(path.read_text())):
            found[str(path.relative_to(REPO))] = hits
    assert not found, f"read or write these through ftpipe.core.records: {found}"


def test_the_scan_sees_a_record_named_by_hand():
    assert literals_naming_records('"""Mentions timing.json."""\nopen("plots/tuned/timing.json")\n') == ["plots/tuned/timing.json"]


def test_a_record_from_an_older_ftpipe_is_one_line_naming_file_and_fields(tmp_path):
    """An older train record kept wall-clock figures in the model folder and lacked fields the readers use."""
    (tmp_path / "ftpipe_train.json").write_text(json.dumps({"trainable_params": 3, "train_runtime": 1.5}))
    with pytest.raises(DataError) as info:
        records.TrainRecord.load(tmp_path)
    message = str(info.value)
    assert "ftpipe_train.json" in message and "has no method, train, base_model" in message and "rerun the train stage" in message
    assert "\n" not in message


def test_missing_and_malformed_records(tmp_path):
    with pytest.raises(DataError, match=r"timing.json.*not found \(written by the evaluate stage"):
        records.TimingRecord.load(tmp_path)
    assert records.TimingRecord.load(tmp_path, missing_ok=True) is None
    (tmp_path / "timing.json").write_text("{oops")
    with pytest.raises(DataError, match=r"timing.json.*malformed JSON at line 1 column 2"):
        records.TimingRecord.load(tmp_path)


def test_a_record_written_reads_back_and_a_newer_ones_extra_field_is_left_out(tmp_path):
    written = records.ColumnsRecord(group_column="example_id", stratify_column=None)
    written.save(tmp_path)
    assert records.ColumnsRecord.load(tmp_path) == written
    (tmp_path / "ftpipe_columns.json").write_text(json.dumps({**written.to_dict(), "added_later": 1}))
    assert records.ColumnsRecord.load(tmp_path) == written


def test_nothing_that_varies_with_identical_inputs_is_in_the_train_record():
    """Wall-clock figures, memory, the machine, the commit and the experiment name live in RunRecord, so a
    retrain to the same weights leaves models/tuned's hash unchanged."""
    varying = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "peak_rss_mb", "device",
               "git_commit", "git_dirty", "dvc_exp_name", "dvc_exp_baseline", "resumed_from_step", "run"}
    train_fields = {f.name for f in dataclasses.fields(records.TrainRecord)}
    assert not varying & train_fields
    assert varying - {"run"} <= {f.name for f in dataclasses.fields(records.RunRecord)}


def test_a_broken_metrics_or_predictions_file_is_one_line_naming_file_row_and_field(tmp_path):
    from ftpipe.core import results

    (tmp_path / "tuned.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"tuned.json.*expected a JSON object, got list \(written by the evaluate stage"):
        results.Scores.load_file(tmp_path / "tuned.json")
    rows = tmp_path / "tuned.jsonl"
    rows.write_text('{"id": "a", "input": "x", "reference": "r", "prediction": "p", "score": 1}\n{"id": "b", "input": "x"}\n')
    with pytest.raises(DataError, match=r"tuned.jsonl, row 2.*field reference: missing \(rerun the evaluate stage\)") as info:
        results.read_predictions(rows)
    assert "\n" not in str(info.value)
    (tmp_path / "compare.json").write_text(json.dumps({"accuracy": 0.1, "significance": {"accuracy": {"delta": 0.1}}}))
    with pytest.raises(DataError, match=r"compare.json.*each metric needs delta, ci95 and p_value"):
        results.Comparison.load_file(tmp_path / "compare.json")


def test_metrics_and_comparison_round_trip_in_the_flat_shape_dvc_reads(tmp_path):
    from ftpipe.core import results

    written = {"accuracy": 0.5, "significance": {"accuracy": {"delta": 0.5, "ci95": [0.4, 0.6], "p_value": 0.002},
                                                 "mcnemar": {"p_value": 1e-9}}}
    (tmp_path / "compare.json").write_text(json.dumps(written))
    loaded = results.Comparison.load_file(tmp_path / "compare.json")
    assert loaded.significance["accuracy"].ci95 == (0.4, 0.6) and loaded.mcnemar_p == 1e-9
    loaded.write(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == written
    scores = results.Scores({"accuracy": 0.7, "per_class": {"a": 0.5}, "examples": 3, "flag": True})
    assert scores.headline == "accuracy" and scores.numbers() == {"accuracy": 0.7, "per_class.a": 0.5, "examples": 3}

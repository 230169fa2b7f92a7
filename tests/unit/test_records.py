"""Sidecar records go through ftpipe.core.records only, and an old or broken one is one clear line."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from ftpipe.core import records
from ftpipe.core.errors import DataError

REPO = Path(__file__).resolve().parents[2]
NAMES = {record.filename for record in records.ALL}


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


def test_a_record_from_an_older_ftpipe_is_one_line_naming_file_and_keys(tmp_path):
    (tmp_path / "ftpipe_train.json").write_text(json.dumps({"trainable_params": 3}))
    with pytest.raises(DataError) as info:
        records.TRAIN.read(tmp_path)
    message = str(info.value)
    assert "ftpipe_train.json" in message and "has no method:" in message and "rerun the train stage" in message
    assert "\n" not in message


def test_missing_and_malformed_records(tmp_path):
    with pytest.raises(DataError, match=r"timing.json.*not found \(written by the evaluate stage"):
        records.TIMING.read(tmp_path)
    assert records.TIMING.read(tmp_path, missing_ok=True) == {}
    (tmp_path / "timing.json").write_text("{oops")
    with pytest.raises(DataError, match=r"timing.json.*malformed JSON at line 1 column 2"):
        records.TIMING.read(tmp_path)


def test_a_record_written_reads_back(tmp_path):
    data = {"group_column": "example_id", "stratify_column": None}
    records.COLUMNS.write(tmp_path, data)
    assert records.COLUMNS.read(tmp_path) == data

"""DVC's record is what ran: identical data gives identical bytes whatever its path or mtime, an
identical rewrite reruns nothing downstream, a queued experiment runs the code its snapshot holds,
and a data file of the wrong kind is refused before anything reads or caches it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_repo, run, write_params
from test_bad_input import assert_one_line_error

TOKENIZE = "python stages/tokenize_text.py --clean {clean} --model models/base --out {out}"
SUBSET = "python stages/subset.py --tokenized {tokenized} --out {out}"


def tree_bytes(root: Path) -> dict[str, str]:
    """Every file under `root` by relative path, with the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_the_same_clean_data_tokenizes_to_the_same_bytes_from_any_path_and_mtime(tiny_pipeline, tmp_path):
    repo = tiny_pipeline
    for i, when in ((1, 1_000_000_000), (2, 1_700_000_000)):
        clean = tmp_path / f"elsewhere-{i}" / "clean"
        shutil.copytree(repo / "data/clean", clean)
        for file in clean.iterdir():
            os.utime(file, (when, when))
        run(TOKENIZE.format(clean=clean, out=tmp_path / f"tokenized-{i}"), repo)
        run(SUBSET.format(tokenized=tmp_path / f"tokenized-{i}", out=tmp_path / f"subset-{i}"), repo)
    for name in ("tokenized", "subset"):
        first, second = tree_bytes(tmp_path / f"{name}-1"), tree_bytes(tmp_path / f"{name}-2")
        assert "train/state.json" in first and first == second, name
        assert first == tree_bytes(repo / "data" / name), f"{name}: not what the pipeline made from data/clean"


@pytest.mark.slow
def test_forcing_tokenize_on_unchanged_data_reruns_nothing_after_it(tiny_pipeline):
    repo = tiny_pipeline
    lock = (repo / "dvc.lock").read_text()
    out = run(["dvc", "repro", "--force", "--single-item", "tokenize"], repo).stdout
    assert "Running stage 'tokenize'" in out, out
    assert (repo / "dvc.lock").read_text() == lock  # the same hash for data/tokenized
    out = run(["dvc", "repro"], repo).stdout
    assert set(re.findall(r"Running stage '([^']+)'", out)) == {"summary"}, out  # the always-run summary only


@pytest.mark.slow
def test_a_queued_experiment_runs_the_code_of_its_own_snapshot(tiny_pipeline, tmp_path):
    """Queue an experiment, edit the workspace's code, run the queue: the snapshot's code ran."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_pipeline, repo, symlinks=True)
    module = repo / "src/ftpipe/summary.py"  # the summary stage's own module: only that stage reruns
    original = module.read_text()
    marker = "from pathlib import Path as _P; _P({!r}).write_text({!r})\n"
    module.write_text(original + marker.format(str(tmp_path / "ran"), "snapshot"))
    run(["dvc", "exp", "run", "--queue", "-S", "evaluate.report_examples=4"], repo)  # reruns evaluate, compare, summary
    module.write_text(original + marker.format(str(tmp_path / "ran"), "workspace"))
    run(["dvc", "queue", "start", "-j", "1"], repo)
    deadline = time.time() + 600
    while any(word in (status := run(["dvc", "queue", "status"], repo).stdout) for word in ("Queued", "Running")):
        assert time.time() < deadline, status
        time.sleep(2)
    task = status.splitlines()[1].split()[0]  # under the header line
    assert "Success" in status, status + run(["dvc", "queue", "logs", task], repo, check=False).stdout
    assert (tmp_path / "ran").read_text() == "snapshot"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["directory", "unsupported type"])
def test_a_data_file_of_the_wrong_kind_is_refused_before_anything_is_read_or_cached(tmp_path, kind):
    repo = make_repo(tmp_path / "repo")
    bad = tmp_path / ("folder.csv" if kind == "directory" else "shadow")
    bad.mkdir() if kind == "directory" else bad.write_text("root:$6$secret:19000:0:99999:7:::\n")
    write_params(repo, ["data.source=local", f"+data.files={{train: [{bad}], eval: [{bad}]}}"])
    result = run(["dvc", "repro", "download_data"], repo, check=False)
    expected = "not a regular file" if kind == "directory" else "unsupported file type"
    assert_one_line_error(result, "params.yaml: data.files", expected, str(bad))
    assert not (repo / "data/raw").exists() and not list((repo / "data/inputs").glob("*.json"))
    assert not [p for p in (repo / ".dvc/cache").rglob("*") if p.is_file()]


def test_data_files_are_read_in_place_and_checked_against_their_fingerprint(tmp_path, monkeypatch):
    """download_data lists the user's file (no copy); preprocess refuses it once its bytes changed."""
    from ftpipe.config import DataConfig
    from ftpipe.data.download import download_data
    from ftpipe.errors import DataError
    from ftpipe.preprocess import input_files

    monkeypatch.chdir(tmp_path)
    Path("mine.csv").write_text("text,label\nGreat,4\n")
    download_data(DataConfig(source="local", files={"train": ["mine.csv"], "eval": ["mine.csv"]}), Path("raw"))
    assert sorted(p.name for p in Path("raw/train").iterdir()) == ["ftpipe_files.json"]
    assert input_files(Path("raw/train")) == [Path("mine.csv")]
    Path("mine.csv").write_text("text,label\nAwful,0\n")
    with pytest.raises(DataError, match=r"^mine.csv: changed since download_data fingerprinted it"):
        input_files(Path("raw/train"))


def test_duplicate_ids_are_found_by_digest_and_named_by_file_and_record(tmp_path):
    """The duplicate check keeps 8-byte digests, yet names both records, across files of a split."""
    import pyarrow.parquet as pq

    from ftpipe.config import DataConfig

    from ftpipe.params import load_params
    from ftpipe.errors import DataError
    from ftpipe.preprocess import preprocess
    from ftpipe.tasks import get_task

    raw = tmp_path / "raw"
    for split in ("train", "eval"):
        (raw / split).mkdir(parents=True)
    rows = [{"id": f"r{i}", "text": f"review {i}", "label": i % 5} for i in range(25_000)]  # past one Parquet row group
    (raw / "train/a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (raw / "train/b.jsonl").write_text(json.dumps({"id": "r7", "text": "again", "label": 1}) + "\n")
    (raw / "eval/c.jsonl").write_text(json.dumps({"id": "e1", "text": "other", "label": 2}) + "\n")
    task = get_task(load_params("task", path=REPO / "params.yaml").task)
    with pytest.raises(DataError) as err:
        preprocess(task, DataConfig(), raw, tmp_path / "clean", tmp_path / "counts.json")
    assert str(err.value) == f"{raw}/train/b.jsonl: record 1: field 'id': duplicate id 'r7' (first seen in a.jsonl record 8)"
    assert not (tmp_path / "clean").exists()
    (raw / "train/b.jsonl").unlink()
    stats = preprocess(task, DataConfig(), raw, tmp_path / "clean", tmp_path / "counts.json")
    assert stats["train"]["records"] == 25_000 and stats["overlap"] == {"ids": 0, "texts": 0}
    written = pq.ParquetFile(tmp_path / "clean/train.parquet")
    assert written.metadata.num_row_groups == 3 and written.read().column("id").to_pylist() == [r["id"] for r in rows]

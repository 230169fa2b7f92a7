"""A user's data files: read in place and checked against their fingerprint; duplicate ids found across
files by digest and named by file and record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO


def test_data_files_are_read_in_place_and_checked_against_their_fingerprint(tmp_path, monkeypatch):
    """download_data lists the user's file (no copy); preprocess refuses it once its bytes changed."""
    from ftpipe.core.config import DataConfig
    from ftpipe.data.download import download_data
    from ftpipe.core.errors import DataError
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

    from ftpipe.core.config import DataConfig

    from ftpipe.params import load_params
    from ftpipe.core.errors import DataError
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


def test_files_without_ids_that_share_a_name_get_distinct_ids(tmp_path, monkeypatch):
    """Ids made for records without one start with the file's stem, or its path where two listed files share
    a stem: a/reviews.csv and b/reviews.csv made the same ids, refused as duplicates of an `id` field
    neither file has."""
    import pyarrow.parquet as pq

    from ftpipe.core.config import DataConfig
    from ftpipe.data.download import download_data
    from ftpipe.params import load_params
    from ftpipe.preprocess import preprocess
    from ftpipe.tasks import get_task

    monkeypatch.chdir(tmp_path)
    for folder, words in (("a", "good"), ("b", "bad"), ("c", "fine")):
        Path(folder).mkdir()
        Path(folder, "reviews.csv" if folder != "c" else "other.csv").write_text(
            "text,label\n" + "".join(f"{words} {i},{i % 5}\n" for i in range(3)))
    files = ["a/reviews.csv", "b/reviews.csv", "c/other.csv"]
    data = DataConfig(source="local", files={"train": files, "eval": ["c/other.csv"]})
    download_data(data, Path("raw"))
    task = get_task(load_params("task", path=REPO / "params.yaml").task)
    stats = preprocess(task, data, Path("raw"), Path("clean"), Path("counts.json"))
    assert stats["train"]["records"] == 9
    assert pq.read_table("clean/train.parquet").column("id").to_pylist() == [
        *(f"a/reviews.csv-{n}" for n in (1, 2, 3)), *(f"b/reviews.csv-{n}" for n in (1, 2, 3)), "other-1", "other-2", "other-3"]

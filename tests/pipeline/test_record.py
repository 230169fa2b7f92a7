"""DVC's record is what ran: identical data gives identical bytes whatever its path or mtime, an
identical rewrite reruns nothing downstream, a queued experiment runs the code its snapshot holds,
and a data file of the wrong kind is refused before anything reads or caches it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, make_repo, run, write_params

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
    repo = tiny_pipeline
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



"""A stage reruns exactly when something it uses changed: the user's own data files are deps, and the
committed dvc.lock matches HEAD and a fresh clone's data stages. (Code deps: tests/contract/test_code_deps.py.)"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from conftest import REPO, run



DATA_STAGES = ("download_data", "download_model", "preprocess", "tokenize", "subset")


@pytest.mark.slow
def test_committed_lock_matches_head(tmp_path):
    """On a fresh clone, `dvc status` may say outputs are missing, never that code, params or deps changed;
    and its quickstart reproduces the committed hash of every data stage's outputs, byte for byte."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    status = json.loads(run(["dvc", "status", "--json"], REPO).stdout or "{}")
    stale = {}
    for stage, changes in status.items():
        for change in changes:
            if change == "always changed":  # the summary stage: it prints the headline on every run
                continue
            if not isinstance(change, dict):
                stale.setdefault(stage, []).append(change)
                continue
            if "changed params" in change:
                stale.setdefault(stage, []).append(change["changed params"])
            for path, state in change.get("changed deps", {}).items():
                # Deps that are outputs of other stages are missing on a fresh clone: that is expected.
                produced = any(path == out or path.startswith(out + "/") for s in lock.values() for out in _outs(s))
                if not (produced and state in ("deleted", "not in cache")):
                    stale.setdefault(stage, []).append({path: state})
    assert not stale, f"dvc.lock is stale (run the quickstart and commit dvc.lock): {stale}"

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(REPO), str(clone)], tmp_path)
    committed = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    run(["dvc", "repro", "subset"], clone)  # its stages import the clone's own src/ (stages/_checkout.py)
    made = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    hashes = lambda lock, stage: {out["path"]: out["md5"] for out in lock[stage]["outs"]}  # noqa: E731
    assert {s: hashes(made, s) for s in DATA_STAGES} == {s: hashes(committed, s) for s in DATA_STAGES}


def _outs(stage: dict) -> list[str]:
    return [out["path"] for out in stage.get("outs", [])]


@pytest.mark.slow
def test_editing_a_record_of_a_local_file_reruns_from_there(tiny_pipeline, tmp_path):
    """A user's own CSV, inside the repository and outside it: one byte changed, the pipeline notices."""
    outside = tmp_path / "shared" / "eval.csv"
    outside.parent.mkdir()
    repo = tiny_pipeline
    (repo / "data/mine").mkdir(parents=True)
    inside = repo / "data/mine/train.csv"
    from ftpipe.data.synthetic import reviews

    for path, rows in ((inside, reviews(200, seed=1)), (outside, reviews(60, seed=2))):
        path.write_text("text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in rows))
    shutil.copy2(REPO / ".dvcignore", repo / ".dvcignore")
    files = f"{{train: [data/mine/train.csv], eval: [{outside}]}}"
    # The data stages are what the files feed; training on them is other tests' business.
    run(["dvc", "exp", "run", "-S", "data.source=local", "-S", f"+data.files={files}", "-S", "subset.train_size=200",
         "-S", "subset.eval_size=60", "subset"], repo)
    assert json.loads(run(["dvc", "status", "--json", "--with-deps", "subset"], repo).stdout) == {}

    for path in (inside, outside):
        text = path.read_text().splitlines(keepends=True)
        text[5] = text[5].replace('"', '"edited ', 1)  # one record's text, inside its quotes
        path.write_text("".join(text))
        status = run(["dvc", "status", "--with-deps", "subset"], repo).stdout
        assert "modified:" in status and str(path.relative_to(repo) if path == inside else path) in status, status
        out = run(["dvc", "repro", "subset"], repo).stdout
        ran = set(re.findall(r"Running stage '([^']+)'", out))
        assert {"download_data", "preprocess", "tokenize"} <= ran, out


def test_another_tasks_metric_leaves_a_pipeline_clean_its_own_reruns_it(tiny_pipeline):
    """Each task's metric lives in its task package: editing the entity metric leaves a classification
    pipeline up to date; editing the classification metric makes its evaluate stages stale."""
    repo = tiny_pipeline

    def stale() -> set[str]:
        status = json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}")
        return {stage for stage, changes in status.items() if changes != ["always changed"]}  # but the summary

    assert stale() == set()
    for path in ("src/ftpipe/tasks/token_classification/entities.py", "src/ftpipe/tasks/qa/squad.py"):
        with open(repo / path, "a") as fh:
            fh.write("# edited\n")
    assert stale() == set()
    with open(repo / "src/ftpipe/tasks/classification/class_scores.py", "a") as fh:
        fh.write("# edited\n")
    assert {"evaluate@tuned", "evaluate@base"} <= stale()

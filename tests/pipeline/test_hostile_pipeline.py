"""Hostile values through `dvc repro`, as a pull request or a user's files bring them: no file name and no
params value ever runs as a command, and a CoNLL file listed in data.files trains the tagger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import OFFLINE, assert_one_line_error, run

pytestmark = pytest.mark.slow
# Each would create `ran` in the repository if a shell ever saw it unquoted.
HOSTILE_NAMES = ["a$(touch ran).csv", "b`touch ran`.csv", "c;touch ran;.csv", "it's mine.csv", "my reviews.csv"]


def edit_params(repo, edit) -> None:
    """params.yaml edited by hand, as a pull request may: no composition, no checks before DVC runs."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_data_file_name_never_runs_as_a_command(tiny_pipeline):
    from ftpipe.core.config import data_inputs
    from ftpipe.data.synthetic import reviews

    repo = tiny_pipeline
    (repo / "data/mine").mkdir(parents=True)
    names = []
    for i, name in enumerate(HOSTILE_NAMES):
        (repo / "data/mine" / name).write_text("text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in reviews(40, seed=i)))
        names.append(f"data/mine/{name}")

    def listed(params):
        params["data"].update(source="local", files={"train": names[1:], "eval": names[:1]}, eval_from_train=0.0)
        params["data_inputs"] = data_inputs("local", params["data"]["files"])

    edit_params(repo, listed)
    out = run(["dvc", "repro", "preprocess"], repo).stdout
    assert not (repo / "ran").exists(), out
    assert sorted(p.name for p in (repo / "data/inputs").glob("*.json")) == sorted(
        ["eval-00-a_touch_ran_.csv.json", "train-00-b_touch_ran_.csv.json", "train-01-c_touch_ran_.csv.json",
         "train-02-it_s_mine.csv.json", "train-03-my_reviews.csv.json"])
    assert json.loads((repo / "metrics/preprocess.json").read_text())["train"]["records"] == 4 * 40


def test_a_launch_prefix_in_params_never_runs(tiny_pipeline):
    repo = tiny_pipeline
    before = (repo / "models/tuned/model.safetensors").read_bytes()
    edit_params(repo, lambda params: params["train"].update(launch_prefix="touch ran; python"))
    result = run(["dvc", "repro", "train"], repo, check=False)
    assert_one_line_error(result, "params.yaml: train.launch_prefix: 'touch ran; python' does not match the launcher settings")
    assert not (repo / "ran").exists() and (repo / "models/tuned/model.safetensors").read_bytes() == before


def test_a_conll_file_listed_in_data_files_trains_the_tagger(ner_pipeline):
    """The documented route for one's own annotations: a CoNLL file in a data config's files, through `dvc exp run`."""
    from ftpipe.tasks.token_classification.synthetic import entities

    repo = ner_pipeline
    sentences = entities(300, seed=7)
    conll = repo / "data/mine/train.conll"
    conll.parent.mkdir(parents=True)
    conll.write_text("-DOCSTART- O\n\n" + "".join("".join(f"{t} {g}\n" for t, g in zip(s["tokens"], s["tags"])) + "\n" for s in sentences))
    out = run(["dvc", "exp", "run", "-S", "data.source=local", "-S", "++data.files={train: [data/mine/train.conll]}",
               "-S", "++data.eval_from_train=0.25"], repo).stdout
    assert "Running stage 'data_file@0'" in out and "Running stage 'train'" in out, out
    counts = json.loads((repo / "metrics/preprocess.json").read_text())
    assert counts["train"]["records"] + counts["eval"]["records"] == 300, counts
    base, tuned = (json.loads((repo / f"metrics/{which}.json").read_text()) for which in ("base", "tuned"))
    assert tuned["f1"] > base["f1"], (base, tuned)


def test_a_second_exp_run_is_refused_while_one_runs_and_the_first_keeps_its_params(tiny_pipeline, tmp_path):
    """Two `dvc exp run` in one workspace, the second started two seconds into the first one's training: the
    second is one line naming the first and changes nothing; the first ends with its own params, listed."""
    repo, log = tiny_pipeline, tmp_path / "first.log"
    env = {**os.environ, **OFFLINE, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with open(log, "w") as out:
        first = subprocess.Popen(["dvc", "exp", "run", "-n", "first-run", "-S", "train.epochs=40", "-S", "train.lr=0.003"],
                                 cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while "Running stage 'train'" not in log.read_text():
            assert first.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(2)
        second = run(["dvc", "exp", "run", "-S", "train.lr=0.5"], repo, check=False)
        assert first.poll() is None, "the first run ended before the second composed: give it more epochs"
    finally:
        first.wait(timeout=600)
    assert first.returncode == 0, log.read_text()
    assert second.returncode != 0 and second.stdout == "", second.stdout
    assert second.stderr.splitlines() == [second.stderr.strip()], second.stderr
    assert "error: experiment 'first-run' is running in this workspace" in second.stderr, second.stderr
    params = yaml.safe_load((repo / "params.yaml").read_text())["train"]
    assert (params["lr"], params["epochs"]) == (0.003, 40)
    listed = run(["dvc", "exp", "show", "--csv"], repo).stdout.splitlines()
    header, rows = listed[0].split(","), [row.split(",") for row in listed if row.startswith("first-run,")]
    assert len(rows) == 1, listed
    assert (rows[0][header.index("train.lr")], rows[0][header.index("train.epochs")]) == ("0.003", "40")


def test_an_edit_that_keeps_size_and_mtime_is_seen_after_touch(tiny_pipeline):
    """DVC trusts its state database while a file's size and modification time stay: an edit that restores
    both is invisible to `dvc status`. The README's refresh, `touch` on the file, makes it seen and rerun."""
    from ftpipe.core.config import data_inputs
    from ftpipe.data.synthetic import reviews

    repo = tiny_pipeline
    mine = repo / "data/mine/reviews.csv"
    mine.parent.mkdir(parents=True)
    mine.write_text("text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in reviews(60, seed=3)))

    def listed(params):
        params["data"].update(source="local", files={"train": ["data/mine/reviews.csv"]}, eval_from_train=0.25)
        params["data_inputs"] = data_inputs("local", params["data"]["files"])

    edit_params(repo, listed)
    run(["dvc", "repro", "preprocess"], repo)
    stat = mine.stat()
    edited = mine.read_text().replace(",3 stars\n", ",4 stars\n", 1)  # one label, same size
    assert edited != mine.read_text()
    mine.write_text(edited)
    os.utime(mine, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert mine.stat().st_size == stat.st_size
    assert run(["dvc", "status", "--with-deps", "preprocess"], repo).stdout == "Data and pipelines are up to date.\n"  # DVC, not ftpipe
    mine.touch()
    assert "data_file@0" in run(["dvc", "status", "--with-deps", "preprocess"], repo).stdout
    out = run(["dvc", "repro", "preprocess"], repo).stdout
    assert "Running stage 'data_file@0'" in out and "Running stage 'preprocess'" in out, out

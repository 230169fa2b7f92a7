"""The task contract, over the registry: for every task type's tiny experiment (conf/experiment/test_tiny*.yaml,
reproduced once per test run), the plots its plug-in declares render from the files and columns evaluation
wrote, the tuned model's card loads it with plain transformers/peft from a copy, and ftpipe-predict answers a
file in the task's own input format. A new task type is picked up here without editing this file."""

from __future__ import annotations

import csv
import importlib
import json
import os

import pytest
import yaml

from cards import card_parts, follow_card
from conftest import TINY_EXPERIMENTS, run

pytestmark = pytest.mark.slow


def plugin(repo):
    from ftpipe.tasks import TASK_TYPES

    task_type = yaml.safe_load((repo / "params.yaml").read_text())["task"]["type"]
    return importlib.import_module(TASK_TYPES[task_type])


@pytest.mark.parametrize("experiment", TINY_EXPERIMENTS)
def test_every_declared_plot_renders_from_what_evaluation_wrote(reproduced, experiment, tmp_path):
    repo = reproduced(experiment, tmp_path / "repo")
    plots = plugin(repo).PLOTS
    specs = yaml.safe_load((repo / "params.yaml").read_text())["plot_specs"]
    assert specs[:len(plots)] == [plot.spec() for plot in plots]  # composed from the plug-in, the rest training curves
    for plot in plots:
        for which in plot.models:  # evaluation wrote every file, with the columns the plot reads
            with open(repo / "plots" / which / plot.file) as fh:
                header = next(csv.reader(fh))
            assert plot.x in header and plot.y in header, (which, plot, header)
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert not shown.get("errors"), shown.get("errors")
    assert {plot.name for plot in plots} <= set(shown["data"])
    assert any(key.startswith("dvclive/train/plots/metrics") for key in shown["data"])  # training curves


@pytest.mark.parametrize("experiment", TINY_EXPERIMENTS)
def test_the_tuned_models_card_loads_it_from_a_copy(reproduced, experiment, tmp_path):
    built = reproduced(experiment)  # read only: the card's code runs on a copy of the model
    tuned = built / "models/tuned"
    meta, body, _ = card_parts(tuned / "README.md")
    assert meta["base_model"] and meta["pipeline_tag"] and "ftpipe" in meta["tags"] and "dvc repro" in body
    adapter = (tuned / "adapter_config.json").exists()
    assert follow_card(tuned, tmp_path, base=built / "models/base" if adapter else None).strip()


@pytest.mark.parametrize("experiment", TINY_EXPERIMENTS)
def test_predict_answers_a_file_in_the_tasks_own_format(reproduced, experiment, tmp_path):
    from ftpipe.preprocess import input_files
    from ftpipe.tasks import get_task

    from ftpipe.params import load_params

    repo = reproduced(experiment, tmp_path / "repo")
    cwd = os.getcwd()
    os.chdir(repo)  # the user's own files are listed relative to the repository
    try:
        task = get_task(load_params("task", path=repo / "params.yaml").task)
        path = (repo / input_files(repo / "data/raw/train")[0]).resolve()
        records = [record for _, record in task.read(path, {})]
    finally:
        os.chdir(cwd)
    out = tmp_path / "predicted.jsonl"
    run(["ftpipe-predict", "--model", "models/tuned", "--file", str(path), "--out", str(out)], repo)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(records) and all({"id", "prediction"} <= set(row) for row in rows), rows[:2]

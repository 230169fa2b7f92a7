"""What a run shows and keeps: the summary's last lines, headline metrics narrow enough for
`dvc exp show`, plots for every task type, and trackers beside DVCLive (train.report_to)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run

TASK_TYPES = ("classification", "qa", "summarization")


# --- summary -------------------------------------------------------------------------------------
def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


@pytest.mark.parametrize("task_type, base, tuned, first", [
    ("classification", {"accuracy": 0.2, "macro_f1": 0.1}, {"accuracy": 0.7, "macro_f1": 0.6}, "accuracy (0-1): base 0.2 -> tuned 0.7 (+0.5); macro_f1 0.1 -> 0.6"),
    ("qa", {"exact_match": 1.0, "f1": 7.5}, {"exact_match": 50.0, "f1": 59.25}, "f1 (0-100): base 7.5 -> tuned 59.25 (+51.75); exact_match 1 -> 50"),
    ("summarization", {"rouge1": 0.1, "rougeL": 0.11}, {"rouge1": 0.3, "rougeL": 0.31}, "rougeL (0-1): base 0.11 -> tuned 0.31 (+0.2); rouge1 0.1 -> 0.3"),
    ("token_classification", {"f1": 0.04, "recall": 0.1}, {"f1": 0.59, "recall": 0.6}, "f1 (0-1): base 0.04 -> tuned 0.59 (+0.55); recall 0.1 -> 0.6"),
])
def test_summary_names_the_headline_metric_of_each_task_type(tmp_path, task_type, base, tuned, first):
    from ftpipe.summary import summarize
    from ftpipe.tasks import plugin_module

    task = plugin_module(task_type).Task  # the headline and its scale are the plug-in's
    lines = summarize(write(tmp_path / "b.json", base), write(tmp_path / "t.json", tuned), Path("reports/compare.md"), Path("models/tuned"),
                      headline=task.headline_metric, scale=task.metric_scale)
    assert lines == [first, "report: reports/compare.md; tuned model and its card: models/tuned/README.md"]


def test_summary_puts_the_bootstrap_interval_beside_the_headline_delta(tmp_path):
    from ftpipe.summary import summarize

    compared = write(tmp_path / "c.json", {"accuracy": 0.495, "significance": {"accuracy": {"delta": 0.495, "ci95": [0.45, 0.54], "p_value": 0.0}}})
    lines = summarize(write(tmp_path / "b.json", {"accuracy": 0.2075}), write(tmp_path / "t.json", {"accuracy": 0.7025}),
                      Path("r.md"), Path("m"), headline="accuracy", compared=compared)
    assert lines[0] == "accuracy (0-1): base 0.2075 -> tuned 0.7025 (+0.495 [+0.45, +0.54], p < 0.001)"


def test_summary_names_a_conf_edit_that_params_yaml_does_not_hold(tmp_path):
    import yaml

    from ftpipe.params import conf_digest
    from ftpipe.summary import stale_params

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/config.yaml").write_text("train:\n  lr: 1.0e-4\n")
    params = tmp_path / "params.yaml"
    params.write_text(f"train:\n  lr: 1.0e-4\nconf_digest: {conf_digest(tmp_path / 'conf')}\n")
    assert stale_params(params, tmp_path / "conf") is None
    (tmp_path / "conf/config.yaml").write_text("train:\n  lr: 3.0e-4\n")  # edited by hand, never composed
    assert "has changed since" in stale_params(params, tmp_path / "conf") and "python -m ftpipe.params" in stale_params(params, tmp_path / "conf")
    assert conf_digest(REPO / "conf") == yaml.safe_load((REPO / "params.yaml").read_text())["conf_digest"]  # the committed pair agrees


def test_summary_stage_never_fails_the_run(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "stages/summary.py"), "--base", "missing.json", "--tuned", "missing.json",
                          "--report", "r.md", "--model", "m"], cwd=tmp_path, text=True, capture_output=True)
    assert out.returncode == 0 and out.stdout.startswith("summary: unavailable"), out


# --- plots ---------------------------------------------------------------------------------------
ROWS = {
    "classification": [{"id": "a", "input": "x", "reference": "pos", "prediction": "pos", "score": 1.0},
                       {"id": "b", "input": "y", "reference": "neg", "prediction": "pos", "score": 0.0}],
    "qa": [{"id": "q1", "input": "Who wrote it? | ctx", "reference": "Ann", "answers": ["Ann"], "prediction": "Ann",
            "start": 0, "probability": 0.9, "exact_match": 1.0, "score": 1.0},
           {"id": "q2", "input": "When did the long war of the north end? | ctx", "reference": "in the year 1066", "answers": ["in the year 1066"],
            "prediction": "1066", "start": 3, "probability": 0.5, "exact_match": 0.0, "score": 0.4},
           {"id": "q3", "input": "Why? | ctx", "reference": "", "answers": [], "prediction": "", "start": -1, "probability": 0.6,
            "exact_match": 1.0, "score": 1.0}],
    "summarization": [{"id": "d1", "input": "dlg", "reference": "a b c", "references": ["a b c"], "prediction": "a b", "score": 0.8}],
}


def make_task(task_type):
    from ftpipe.params import validate
    from ftpipe.tasks import get_task

    raw = {"type": task_type, "name": task_type, **({"labels": ["neg", "pos"]} if task_type == "classification" else {})}
    return get_task(validate({"task": raw}, ("task",)).task)


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_every_plot_a_task_declares_reads_files_and_columns_it_writes(task_type, tmp_path):
    """So `dvc plots show` never meets a missing file or column, whatever the task type."""
    import importlib

    from ftpipe.tasks import TASK_TYPES as MODULES

    task = make_task(task_type)
    for which in ("base", "tuned"):
        (tmp_path / "plots" / which).mkdir(parents=True)
        task.write_plots(ROWS[task_type], tmp_path / "plots" / which)
    plots = importlib.import_module(MODULES[task_type]).PLOTS
    slots = (REPO / "dvc.yaml").read_text().count("${plot_specs[")
    assert len(plots) == slots == 3  # every slot of dvc.yaml filled
    for spec in plots:
        (props,) = spec.values()
        for path, column in props["y"].items():
            with open(tmp_path / path) as fh:
                header = next(csv.reader(fh))
            assert column in header and props["x"] in header, (spec, header)


def test_qa_plot_data_is_on_the_qa_scale(tmp_path):
    make_task("qa").write_plots(ROWS["qa"], tmp_path)
    by_length = {r["answer_words"]: r for r in csv.DictReader(open(tmp_path / "by_answer_length.csv"))}
    assert by_length["01"]["f1"] == "100.0" and by_length["04-05"]["f1"] == "40.0" and by_length["none"]["questions"] == "1"
    by_type = {r["question_type"]: r for r in csv.DictReader(open(tmp_path / "by_question_type.csv"))}
    assert set(by_type) == {"who", "when", "why"} and by_type["when"]["exact_match"] == "0.0"


def test_plot_specs_follow_the_task_type(monkeypatch):
    from ftpipe.params import compose

    monkeypatch.chdir(REPO)
    for task, first in (("reviews", "confusion_tuned"), ("squad", "f1_by_answer_length"), ("dialogsum", "rougeL_per_example")):
        assert list(compose([f"task={task}"])["plot_specs"][0]) == [first]


# --- trackers ------------------------------------------------------------------------------------
def test_report_to_passes_other_trackers_and_keeps_dvclive_built_in(tmp_path):
    from ftpipe.config import TrainConfig
    from ftpipe.errors import ConfigError
    from ftpipe.tracking import report_to
    from ftpipe.train import training_arguments

    assert TrainConfig().report_to == ["dvclive"]
    assert report_to(TrainConfig(), tmp_path) == "none"  # DVCLive is LiveLogger, not transformers' callback
    assert training_arguments(TrainConfig(precision="fp32"), tmp_path / "ckpt").report_to in ([], "none")
    with pytest.raises(ConfigError, match="train.report_to: unknown tracker 'nonsense'"):
        report_to(TrainConfig(report_to=["dvclive", "nonsense"]), tmp_path)
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    missing = next(name for name in ("wandb", "mlflow", "comet_ml", "neptune") if name not in get_available_reporting_integrations())
    with pytest.raises(ConfigError, match=f"'{missing}' is not installed"):
        report_to(TrainConfig(report_to=[missing]), tmp_path)


# --- in a real run -------------------------------------------------------------------------------
def exp_show(repo: Path, *options: str) -> list[str]:
    lines = run(["dvc", "exp", "show", "--no-pager", *options], repo, env={"COLUMNS": "200"}).stdout.splitlines()
    assert lines and max(map(len, lines)) <= 200, "\n".join(lines)
    return lines


def test_exp_show_on_the_quickstart_fits_200_columns_with_accuracy_and_lr(tmp_path):
    """The quickstart's params and dependencies as committed, with its metrics file (no need to train for the layout)."""
    from conftest import make_repo

    repo = make_repo(tmp_path / "repo", "quickstart")
    (repo / "metrics").mkdir()
    (repo / "metrics/tuned.json").write_text(json.dumps({"accuracy": 0.735, "macro_f1": 0.7243430641785111}))
    run("git add -A && git commit -qm metrics", repo)
    lines = exp_show(repo)
    header = next(line for line in lines if "Experiment" in line)
    assert re.search(r"\baccuracy\b", header) and re.search(r"\btrain\.lr\b", header), "\n".join(lines)
    assert re.search(r"0\.735 .* 0\.0001 ", next(line for line in lines if "workspace" in line)), "\n".join(lines)


@pytest.mark.slow
def test_exp_show_keeps_accuracy_and_lr_of_experiments_in_view(tiny_pipeline):
    """The tiny experiment has more params (model.tiny.*) and, after test_pipeline and test_remote, experiment
    rows, queued ones among them (dvc adds State and Executor columns): --only-changed, as the README says."""
    import yaml

    lines = exp_show(tiny_pipeline, "--only-changed")
    assert re.search(r"\baccuracy\b", next(line for line in lines if "Experiment" in line)), "\n".join(lines)
    lr = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())["train"]["lr"]
    accuracy = json.loads((tiny_pipeline / "metrics/tuned.json").read_text())["accuracy"]
    shown = [re.escape(f"{value:.5g}") for value in (accuracy, lr)]  # as dvc rounds them
    assert re.search(rf"{shown[0]} .* {shown[1]} ", next(line for line in lines if "workspace" in line)), "\n".join(lines)


@pytest.mark.slow
def test_plots_render_for_classification(tiny_pipeline):
    out = json.loads(run(["dvc", "plots", "show", "--json"], tiny_pipeline).stdout)
    assert not out.get("errors"), out.get("errors")
    assert {"confusion_tuned", "confusion_base", "recall_by_class"} <= set(out["data"])
    assert any(key.startswith("dvclive/train/plots/metrics") for key in out["data"])  # training curves


@pytest.mark.slow
def test_summarization_run_ends_with_its_headline_and_renders_its_plots(dialogsum_pipeline):
    out = run(["dvc", "repro"], dialogsum_pipeline).stdout
    assert re.search(r"^rougeL \(0-1\): base [\d.]+ -> tuned [\d.]+ \([+-][\d.e-]+ \[[+-][\d.e-]+, [+-][\d.e-]+\], p [=<] [\d.e-]+\)",
                     out, flags=re.M), out  # the delta with its bootstrap interval
    plots = json.loads(run(["dvc", "plots", "show", "--json"], dialogsum_pipeline).stdout)
    assert not plots.get("errors") and {"rougeL_per_example", "summary_length", "rougeL_by_reference_length"} <= set(plots["data"])

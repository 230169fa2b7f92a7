"""What a run shows and keeps: the summary's last lines, QA's plot data on its scale, and trackers beside
DVCLive (train.report_to). (Every task type's plots: tests/contract/test_task_contract.py.)"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO



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
QA_ROWS = [
    {"id": "q1", "input": "Who wrote it? | ctx", "reference": "Ann", "answers": ["Ann"], "prediction": "Ann",
     "start": 0, "probability": 0.9, "exact_match": 1.0, "score": 1.0},
    {"id": "q2", "input": "When did the long war of the north end? | ctx", "reference": "in the year 1066", "answers": ["in the year 1066"],
     "prediction": "1066", "start": 3, "probability": 0.5, "exact_match": 0.0, "score": 0.4},
    {"id": "q3", "input": "Why? | ctx", "reference": "", "answers": [], "prediction": "", "start": -1, "probability": 0.6,
     "exact_match": 1.0, "score": 1.0}
]


def make_task(task_type):
    from ftpipe.params import validate
    from ftpipe.tasks import get_task

    raw = {"type": task_type, "name": task_type, **({"labels": ["neg", "pos"]} if task_type == "classification" else {})}
    return get_task(validate({"task": raw}, ("task",)).task)


def test_qa_plot_data_is_on_the_qa_scale(tmp_path):
    make_task("qa").write_plots(QA_ROWS, tmp_path)
    by_length = {r["answer_words"]: r for r in csv.DictReader(open(tmp_path / "by_answer_length.csv"))}
    assert by_length["01"]["f1"] == "100.0" and by_length["04-05"]["f1"] == "40.0" and by_length["none"]["questions"] == "1"
    by_type = {r["question_type"]: r for r in csv.DictReader(open(tmp_path / "by_question_type.csv"))}
    assert set(by_type) == {"who", "when", "why"} and by_type["when"]["exact_match"] == "0.0"


# --- trackers ------------------------------------------------------------------------------------
def test_report_to_passes_other_trackers_and_keeps_dvclive_built_in(tmp_path):
    from ftpipe.core.config import TrainConfig
    from ftpipe.core.errors import ConfigError
    from ftpipe.tracking import report_to
    from ftpipe.training.arguments import training_arguments

    assert TrainConfig().report_to == ["dvclive"]
    assert report_to(TrainConfig(), tmp_path) == "none"  # DVCLive is LiveLogger, not transformers' callback
    assert training_arguments(TrainConfig(precision="fp32"), tmp_path / "ckpt").report_to in ([], "none")
    with pytest.raises(ConfigError, match="train.report_to: unknown tracker 'nonsense'"):
        report_to(TrainConfig(report_to=["dvclive", "nonsense"]), tmp_path)
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    missing = next(name for name in ("wandb", "mlflow", "comet_ml", "neptune") if name not in get_available_reporting_integrations())
    with pytest.raises(ConfigError, match=f"'{missing}' is not installed"):
        report_to(TrainConfig(report_to=[missing]), tmp_path)




def test_every_task_types_plots_fill_dvc_yamls_slots_and_the_rest_show_training_curves():
    from hydra_plugins.ftpipe_resolvers import PLOT_SLOTS, TRAINING_CURVES, plot_specs

    from ftpipe.tasks import TASK_TYPES

    assert (REPO / "dvc.yaml").read_text().count("${plot_specs[") == PLOT_SLOTS
    for task_type in TASK_TYPES:
        specs = plot_specs(task_type)
        assert len(specs) == PLOT_SLOTS and specs[-1] == TRAINING_CURVES, task_type
        names = [next(iter(spec)) for spec in specs if spec != TRAINING_CURVES]
        assert names and all(name.replace("_", "").isalnum() for name in names), task_type
        for spec in specs:  # relative to plots/<which>/, as Plot.spec writes them
            paths = list(next(iter(spec.values())).get("y", {}))
            assert all(path.startswith(("plots/base/", "plots/tuned/")) for path in paths), paths


def test_a_task_with_more_plots_than_slots_is_one_line_naming_the_limit(monkeypatch):
    import types

    from hydra_plugins import ftpipe_resolvers

    from ftpipe.tasks import TASK_TYPES
    from ftpipe.tasks.base import Plot

    crowded = types.ModuleType("crowded_task")
    crowded.PLOTS = [Plot(f"p{i}", "x.csv", "a", "b", "linear", "t") for i in range(ftpipe_resolvers.PLOT_SLOTS)]
    monkeypatch.setitem(sys.modules, "crowded_task", crowded)
    monkeypatch.setitem(TASK_TYPES, "crowded", "crowded_task")
    with pytest.raises(ValueError, match=r"task type crowded declares 8 plots; dvc.yaml has room for 7"):
        ftpipe_resolvers.plot_specs("crowded")

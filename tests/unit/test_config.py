"""Configuration: params.yaml is the composition of conf/, every experiment composes, bad values are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO
from ftpipe.params import validate
from ftpipe.core.errors import ConfigError

SECTIONS = ("task", "data", "model", "method", "tokenize", "subset", "train", "evaluate")
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def test_params_yaml_equals_composition_of_conf(composed):
    committed = yaml.safe_load((REPO / "params.yaml").read_text())
    assert committed == composed, "params.yaml is stale: run `python -m ftpipe.params`"


def test_default_experiment_is_quickstart(composed):
    assert composed["model"]["name"] == "minilm"
    assert composed["data"]["source"] == "synthetic"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment, monkeypatch):
    from ftpipe.params import compose

    monkeypatch.chdir(REPO)
    params = compose([f"experiment={experiment}"])
    if params["data"]["source"] == "local":  # local files may live outside a fresh checkout
        params["data"]["files"] = {}
        params["data"]["source"] = "synthetic"
    validate(params, SECTIONS)


def test_command_line_group_beats_the_experiment_choice(monkeypatch):
    from ftpipe.params import compose

    monkeypatch.chdir(REPO)
    params = compose(["experiment=yelp_bert", "model=minilm"])
    assert params["model"]["name"] == "minilm" and params["task"]["name"] == "yelp"


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "lr", -1.0, "train.lr: must be > 0"),
    ("train", "lr", "fast", "train.lr"),
    ("train", "batch_size", 0, "train.batch_size: must be >= 1"),
    ("train", "lrr", 1e-5, "train.lrr"),  # a typo'd key is an error, not silently ignored
    ("method", "type", "magic", "method.type: unknown method type 'magic'"),
    ("model", "source", "ftp", "model.source: unknown source 'ftp'"),
    ("task", "type", "poetry", "task.type: unknown task type 'poetry'"),
    ("data", "on_bad_record", "ignore", "data.on_bad_record"),
])
def test_bad_config_is_one_clear_error(composed, section, key, value, message):
    params = yaml.safe_load(yaml.safe_dump(composed))
    params[section][key] = value
    with pytest.raises(ConfigError) as err:
        validate(params, SECTIONS)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_local_file_names_the_key(composed, tmp_path: Path):
    params = yaml.safe_load(yaml.safe_dump(composed))
    params["data"] = {"source": "local", "files": {"train": [str(tmp_path / "nope.csv")], "eval": [str(tmp_path / "nope.csv")]}}
    with pytest.raises(ConfigError, match=r"data.files.train: file not found: .*nope.csv"):
        validate(params, ("data",))


@pytest.mark.parametrize("overrides, lr", [
    ([], 1e-4),  # the quickstart: full at its experiment's rate
    (["method=lora"], 5e-4),  # another method: its own default (conf/method/lora.yaml), not full's rate
    (["method=features"], 1e-4),  # a method without a rate of its own keeps the experiment's
    (["method=lora", "train.lr=2e-5"], 2e-5),  # -S train.lr sets the rate of any run
    (["experiment=yelp_bert"], 5e-5),
    (["experiment=yelp_bert", "method=prompt_tuning"], 1e-2),
    (["experiment=yelp_bert", "method=adalora"], 5e-3),
    (["experiment=dialogsum_smollm2_lora"], 3e-4),  # an experiment written for lora keeps its rate for lora
    (["experiment=dialogsum_smollm2_lora", "method=ia3"], 3e-3),
    (["experiment=test_tiny", "method=lora"], 2e-3),  # a literal rate in an experiment pins it for every method
])
def test_each_method_trains_at_its_own_default_rate_unless_told(overrides, lr, monkeypatch):
    from ftpipe.params import compose

    monkeypatch.chdir(REPO)
    assert compose(overrides)["train"]["lr"] == pytest.approx(lr)


@pytest.mark.parametrize("line, problem", [("lr: [1e-5", "expected ',' or ']'"),
                                           ("x: !!python/object/apply:os.system [ls]", "could not determine a constructor")])
def test_a_conf_file_that_is_not_yaml_is_one_line_naming_file_and_line(tmp_path, line, problem):
    """Issue 29: a syntax error or a Python tag in conf/ ended `python -m ftpipe.params` in a 90-line traceback."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(REPO / "conf", tmp_path / "conf")
    with open(tmp_path / "conf/train/default.yaml", "a") as fh:
        fh.write(line + "\n")
    out = subprocess.run([sys.executable, "-m", "ftpipe.params"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr and not (tmp_path / "params.yaml").exists(), out.stderr
    (error,) = out.stderr.splitlines()
    assert error.startswith(f"error: {tmp_path / 'conf/train/default.yaml'}: line ") and problem in error, error


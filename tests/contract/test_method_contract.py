"""The method contract, over the registries: every method config (conf/method/*.yaml) on every task type that
has the capabilities it needs (its `needs:`, against each Task.capabilities; none: every task type), trained a few steps through the train() the stage
calls on that task's tiny experiment (conf/experiment/test_tiny*.yaml, its reproduced base and data). What
must train changed, what must stay fixed is bit-identical, and the tuned folder loads back through its
recorded method. A new method or task type is picked up here without editing this file."""

from __future__ import annotations

import os

import pytest
import yaml

from conftest import REPO, TINY_EXPERIMENTS
from tuning import check, params_for, trained


def _task_types() -> dict[str, str]:
    from ftpipe.params import compose

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return {experiment: compose([f"experiment={experiment}"])["task"]["type"] for experiment in TINY_EXPERIMENTS}
    finally:
        os.chdir(cwd)


TASK_OF = _task_types()
NEEDS = {path.stem: (yaml.safe_load(path.read_text()) or {}).get("needs") or [] for path in sorted((REPO / "conf" / "method").glob("*.yaml"))}


def _fits(needs: list[str]) -> list[str]:
    from ftpipe.tasks import fitting

    return fitting(needs)


PAIRS = [pytest.param(experiment, method, id=f"{task}-{method}") for experiment, task in TASK_OF.items()
         for method, needs in NEEDS.items() if task in _fits(needs)]


def test_every_task_type_has_a_tiny_experiment():
    from ftpipe.tasks import TASK_TYPES

    assert set(TASK_TYPES) <= set(TASK_OF.values()), "add conf/experiment/test_tiny_<task>.yaml for the new task type"


@pytest.mark.parametrize("experiment, method", PAIRS)
def test_method_trains_on_every_task_type_it_declares(reproduced, experiment, method, tmp_path, monkeypatch):
    built = reproduced(experiment)  # read only: this test writes under tmp_path

    def teacher_from_the_tuned_model(raw: dict) -> None:  # a method that learns from a teacher learns from this task's
        if "teacher" in raw["method"]:
            raw["method"]["teacher"] = {"source": "local", "path": str(built / "models/tuned")}

    p = params_for(experiment, method, monkeypatch, edit=teacher_from_the_tuned_model, max_steps=3)
    check(*trained(built / "models/base", built / "data/subset", p, tmp_path, monkeypatch), p)

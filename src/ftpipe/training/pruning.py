"""Pruning from inside training: a search trial's validation scores go to its Optuna study, and the run stops
when the study's pruner says so.

`ftpipe-search` runs each trial as `dvc exp run` with the trial's `-S` overrides and names the trial in the
environment ($FTPIPE_TRIAL, a TrialLink as JSON): the train stage's params, and so its DVC hash, are the
trial's overrides alone. Without $FTPIPE_TRIAL nothing here runs (and Optuna is never imported). Only the
main process talks to the study; with several processes it tells the others whether to stop.

A pruned run ends as a finished one does (the best validated checkpoint is loaded and saved, evaluate runs),
so its experiment is kept; runs/train/ftpipe_trial.json (TrialRecord, beside the RunRecord, never in the
model folder) says it was pruned and at which step, and the search records the trial as pruned, its
partial result never counted as a finished score.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from transformers import TrainerCallback

from ftpipe.core.errors import ConfigError
from ftpipe.core.records import Record

TRIAL_ENV = "FTPIPE_TRIAL"
PRUNERS = ("median", "successive_halving", "none")


@dataclass
class TrialLink:
    """Which trial of which study a run is, and the pruner the study prunes with (Optuna keeps no pruner in
    its storage: every process that asks it must build the same one)."""

    storage: str  # a journal file's absolute path, or an Optuna storage URL
    study: str
    trial_id: int
    number: int
    metric: str  # the validation metric reported (train.best_metric)
    pruner: dict = field(default_factory=lambda: {"name": "median"})

    def to_env(self) -> dict[str, str]:
        return {TRIAL_ENV: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls) -> "TrialLink | None":
        text = os.environ.get(TRIAL_ENV)
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            raise ConfigError(TRIAL_ENV, "not a trial link written by ftpipe-search (unset it to train outside a search)") from None


@dataclass
class TrialRecord(Record):
    """runs/train: the search trial this run was, whether it was pruned and at which step."""

    FILENAME: ClassVar[str] = "ftpipe_trial.json"
    WRITER: ClassVar[str] = "train"

    study: str
    number: int
    pruned: bool
    step: int  # the last optimizer step trained
    max_steps: int  # the steps a full run takes
    reported: dict = field(default_factory=dict)  # step -> validation score, as reported to the study


def make_pruner(spec: dict):
    """An Optuna pruner from a search config's `pruner` (name and keyword arguments)."""
    import optuna

    args = {k: v for k, v in spec.items() if k != "name"}
    name = spec.get("name", "median")
    if name == "none":
        return optuna.pruners.NopPruner()
    kind = {"median": optuna.pruners.MedianPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner}.get(name)
    if kind is None:
        raise ConfigError("pruner.name", f"{name}: one of {', '.join(PRUNERS)}")
    try:
        return kind(**args)
    except (TypeError, ValueError) as err:
        raise ConfigError("pruner", f"{name}: {' '.join(str(err).split())[:160]}") from None


def storage_from(spec: str):
    """An Optuna storage: a URL (`sqlite:///...`, `postgresql://...`) as Optuna opens it, else a journal file."""
    if "://" in spec:
        return spec
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(spec)))


def open_trial(link: TrialLink):
    """The live Optuna trial the link names, in a study loaded with the link's pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=link.study, storage=storage_from(link.storage), pruner=make_pruner(link.pruner),
                              sampler=optuna.samplers.RandomSampler())  # never samples here: no grid point is claimed
    return optuna.trial.Trial(study, link.trial_id)


class PruningCallback(TrainerCallback):
    """Report each validation score to the trial; stop training when the pruner prunes it."""

    def __init__(self, link: TrialLink, state):
        self.link, self.state = link, state
        self.trial = open_trial(link) if state.is_main_process else None
        self.record = TrialRecord(link.study, link.number, False, 0, 0)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        pruned = False
        if self.trial is not None:
            key = self.link.metric if self.link.metric.startswith("eval_") else f"eval_{self.link.metric}"
            value = (metrics or {}).get(key)
            if value is not None:
                self.trial.report(float(value), state.global_step)
                self.record.reported[str(state.global_step)] = float(value)
                # At the last step there is nothing left to stop: the run is a finished one whatever the pruner says.
                pruned = state.global_step < state.max_steps and self.trial.should_prune()
        if self.state.num_processes > 1:  # the main process decides for all: each must stop at the same step
            from accelerate.utils import broadcast_object_list

            pruned = broadcast_object_list([pruned])[0]
        if pruned:
            control.should_training_stop = True
            self.record.pruned = True
        self.record.step, self.record.max_steps = state.global_step, state.max_steps
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.record.step, self.record.max_steps = state.global_step, state.max_steps


def pruning_callbacks(state) -> list:
    """[PruningCallback] inside a search trial, else []."""
    link = TrialLink.from_env()
    return [PruningCallback(link, state)] if link else []

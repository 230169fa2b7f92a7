"""One search trial as a DVC experiment: `dvc exp run -n <name>` with the trial's `-S` overrides, the trial
named to the train stage in $FTPIPE_TRIAL (ftpipe.training.pruning), its outcome told to the study.

The outcome is read from what the run left in the workspace: the validation score train recorded
(`best_metric` in models/tuned/ftpipe_train.json) and, in runs/train/ftpipe_trial.json, whether the pruner
stopped it and at which step. A pruned trial is told PRUNED (Optuna keeps its last reported score as an
intermediate value, never as a finished one); its experiment stays, named like the others. A trial whose
params are those the workspace last ran finds every stage up to date (DVC's run cache is off: every out is
persist) and reports as that run did.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ftpipe.search.space import SearchConfig, overrides, suggest
from ftpipe.training.pruning import TrialLink, TrialRecord

RUN, TUNED = Path("runs/train"), Path("models/tuned")  # the train stage's outs (dvc.yaml)


def experiment_run(name: str, settings: list[str], env: dict | None = None) -> int:
    """`dvc exp run -n name -S ...` in the workspace; its exit status. Values reach DVC as arguments, never a shell."""
    cmd = ["dvc", "exp", "run", "-n", name, *[a for o in settings for a in ("-S", o)]]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env={**os.environ, **(env or {})}).returncode


def validation_score(metric: str) -> float | None:
    """The best validation score of the run just made, as train recorded it (None: it recorded none)."""
    from ftpipe.core.records import TrainRecord

    made = TrainRecord.load(TUNED, missing_ok=True)
    best = (made.best_metric if made else None) or {}
    value = best.get(metric, best.get(f"eval_{metric.removeprefix('eval_')}", next(iter(best.values()), None)))
    return None if value is None else float(value)


def run_trial(study, trial, cfg: SearchConfig, fixed: list[str], storage: str, name=None) -> str:
    """Draw the trial's params, run it through DVC, tell the study; returns its final state's name.
    `name`: values -> the experiment's name (default search-<study>-<number>)."""
    from optuna.trial import TrialState

    values = suggest(trial, cfg.space)
    settings = overrides(values)
    name = name(values) if name else f"search-{study.study_name}-{trial.number}"
    trial.set_user_attr("experiment", name)
    trial.set_user_attr("overrides", settings)
    link = TrialLink(storage, study.study_name, trial._trial_id, trial.number, cfg.metric, cfg.pruner)
    started = time.time()
    status = experiment_run(name, [*fixed, *settings], link.to_env())
    trial.set_user_attr("seconds", round(time.time() - started, 1))
    record = TrialRecord.load(RUN, missing_ok=True) if status == 0 else None
    if record is not None:
        trial.set_user_attr("steps", record.step)
        trial.set_user_attr("max_steps", record.max_steps)
        if record.number != trial.number:
            trial.set_user_attr("restored_from", record.number)  # the workspace's last run had these params
        if record.pruned:  # its score is a partial one: Optuna keeps it as an intermediate value only
            study.tell(trial, state=TrialState.PRUNED)
            return "PRUNED"
    score = validation_score(cfg.metric) if status == 0 else None
    if score is None:
        trial.set_user_attr("error", f"dvc exp run exited {status}" if status else "no validation score recorded")
        study.tell(trial, state=TrialState.FAIL)
        return "FAIL"
    study.tell(trial, score)
    return "COMPLETE"

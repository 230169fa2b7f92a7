"""The ladder's `--tune` as a search: one study per method over its learning rate, trials as DVC experiments,
pruned on validation by the train stage (ftpipe.search.trials, ftpipe.training.pruning).

The default is today's grid (the method's rate times each multiplier, GridSampler: every point once) with a
median pruner that starts after the first finished point: a rate whose validation loss is already worse than
the finished ones' at the same step stops there instead of running to the end. `sampler: tpe` (with
`n_trials`) draws rates from the grid's range instead. Each ladder run starts a fresh study
(.ftpipe/search/ladder-<method>.journal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ftpipe.search.space import Dist, SearchConfig
from ftpipe.search.study import JOURNALS, claim, open_study
from ftpipe.search.trials import run_trial

LADDER_PRUNER = {"name": "median", "n_startup_trials": 1}


@dataclass
class Point:
    """One rate tried: its experiment, how it ended, its best validation score (a pruned one's last), its steps."""

    lr: float
    name: str
    state: str
    score: float | None
    steps: int | None


def rate_sweep(method: str, settings: list[str], lrs: list[float], metric: str, sampler: str = "grid",
               n_trials: int | None = None) -> Iterator[Point]:
    """Run the method's rate search, yielding each point while its run is still in the workspace."""
    if sampler == "grid":
        space = (Dist("train.lr", "categorical", choices=tuple(lrs)),)
    else:
        space = (Dist("train.lr", "float", min(lrs), max(lrs), log=True),)
    cfg = SearchConfig(f"ladder-{method}", "ladder --tune", space, n_trials=n_trials or len(lrs), metric=metric,
                       direction="minimize" if metric.endswith("loss") else "maximize",
                       sampler={"name": sampler, "seed": 0}, pruner=dict(LADDER_PRUNER))
    journal = JOURNALS / f"{cfg.name}.journal"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.unlink(missing_ok=True)  # a fresh study per ladder run
    storage = str(journal.resolve())
    study = open_study(cfg, cfg.name, storage)
    while (trial := claim(study, cfg.n_trials)) is not None:
        state = run_trial(study, trial, cfg, settings, storage,
                          name=lambda values: f"ladder-{method}-lr{values['train.lr']:g}")
        done = study.trials[trial.number]
        last = max(done.intermediate_values) if done.intermediate_values else None
        score = done.value if state == "COMPLETE" else (done.intermediate_values.get(last) if last is not None else None)
        yield Point(float(done.params["train.lr"]), done.user_attrs.get("experiment", ""), state, score, done.user_attrs.get("steps"))


def grid_note(points: list[Point]) -> str:
    """The table's lr grid cell: each rate with its score, a pruned one with the step it stopped at."""
    return " ".join(f"{p.lr:g}:{p.score:.6g}" if p.state == "COMPLETE" else f"{p.lr:g}:{p.state.lower()}@{p.steps}" for p in points)

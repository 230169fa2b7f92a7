"""Promotion beyond noise: the search's best configuration and the default (or named baseline runs), each over
K training seeds, compared on the evaluation set with ftpipe-compare's seed-aware test.

The best of N single-seed trials is partly the luckiest seed: it is adopted only when the seed-aware
bootstrap (examples and seeds redrawn, ftpipe.significance.run_bootstrap) puts its headline metric above
the default's with the 95% interval clear of 0. Runs are DVC experiments too: search-<study>-best-s<seed>
and search-<study>-default-s<seed>, so `dvc exp show` lists them and ftpipe-compare can redo the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftpipe.search.space import SearchError
from ftpipe.search.trials import RUN, experiment_run
from ftpipe.training.pruning import TrialRecord


@dataclass
class Promotion:
    """The verdict and what it rests on (reports/search.md)."""

    verdict: str
    best: list[str] = field(default_factory=list)  # the best configuration's overrides
    runs: list[list[str]] = field(default_factory=list)  # experiment names: default (or baseline), best
    result: dict | None = None  # ftpipe.tools.compare.compare's


def seeded_runs(prefix: str, settings: list[str], first_seed: int, seeds: int) -> list:
    """The configuration run at `first_seed` and the seeds after it, each read back from the workspace."""
    from ftpipe.tools import runs as runs_io

    out = []
    for seed in range(first_seed, first_seed + seeds):
        name = f"{prefix}-s{seed}"
        if experiment_run(name, [*settings, f"train.seed={seed}"]) != 0:
            raise SearchError(name, "dvc exp run failed (its output is above)")
        record = TrialRecord.load(RUN, missing_ok=True)
        if record is not None and record.pruned:  # the workspace still held a pruned trial of these very params
            raise SearchError(name, f"trial {record.number}'s pruned run, with these params, was still in the workspace, so "
                                    "DVC reran nothing: git checkout HEAD -- dvc.lock params.yaml && dvc checkout, then search again")
        out.append(runs_io.load(name, None))
    return out


def baseline_runs(names: str) -> list:
    """Runs already made, named as ftpipe-compare names an arm (exp1,exp2 or a prefix-*), read at their revisions."""
    from dvc.repo import Repo

    from ftpipe.tools import runs as runs_io

    listed = [n.strip() for n in names.split(",") if n.strip()]
    with Repo(".") as repo:
        return [runs_io.load(name, rev) for name, rev in runs_io.resolve(repo, listed)]


def promote(study, fixed: list[str], seeds: int, baseline: str | None, params: dict) -> Promotion:
    """Train the best trial's configuration and the default over `seeds` seeds; the seed-aware verdict."""
    from optuna.trial import TrialState

    from ftpipe.tools.compare import compare

    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not finished:
        return Promotion("not shown better than the default: no trial finished (all pruned or failed)")
    best = study.best_trial.user_attrs.get("overrides", [])
    first = int(params["train"]["seed"])
    default = baseline_runs(baseline) if baseline else seeded_runs(f"search-{study.study_name}-default", fixed, first, seeds)
    chosen = seeded_runs(f"search-{study.study_name}-best", [*fixed, *best], first, seeds)
    evaluate = params.get("evaluate") or {}
    result = compare([default, chosen], ("default", "best"), None, int(evaluate.get("bootstrap_resamples", 1000)),
                     int(evaluate.get("seed", 0)), unpaired=False)
    headline = result["metrics"][result["headline"]]
    low, high = headline["ci95"]
    counted = (f"over {len(default)} and {len(chosen)} seeds" if len(default) != len(chosen)
               else f"over {len(chosen)} seed{'s' if len(chosen) > 1 else ''}")
    shown = f"{result['headline']} {headline['delta']:+.4f} [{low:+.4f}, {high:+.4f}] {counted}"
    verdict = (f"adopt: better by {shown}" if headline["verdict"] == "best better"
               else f"not shown better than the default ({headline['verdict']}: {shown})")
    return Promotion(verdict, best, [[r.name for r in default], [r.name for r in chosen]], result)

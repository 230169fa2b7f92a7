"""`python -m ftpipe.tools.ladder`: every method on the same data, one DVC experiment each, compared in one table.

    python -m ftpipe.tools.ladder --methods features,freeze,full,lora,dora,ia3,prompt_tuning,distill \\
        -S experiment=yelp_bert -S model=minilm -S data=yelp_local

Each method runs as `dvc exp run -n ladder-<method> -S method=<method> <your -S overrides>`, one
after another in the workspace (so `dvc exp show` lists them all, and relative data paths keep
working); `distill` runs last, taught by the `full` experiment (fetched by DVC at its experiment
ref) unless `--teacher` names a revision. The table goes to reports/methods.md and, for
`dvc plots show reports/methods.csv --x method --y <metric> --template bar_horizontal`, to
reports/methods.csv: the base model first, then per method the headline metric, trainable
parameters, train time, evaluation samples/s and peak memory, its learning rate and its best
validation score. After the ladder the workspace holds the last experiment's outputs;
`dvc exp apply <name>` brings back any other.

Each method trains at its own default rate (`lr` in conf/method/<name>.yaml: the rate that suits
full fine-tuning barely moves a LoRA adapter or a lone classification head); `-S train.lr=...`
sets one rate for all, `--for METHOD KEY=VALUE` adds an override to one method's run only.

`--tune` sweeps each method's rate first: a search (ftpipe.search.sweep, as `ftpipe-search` runs one)
whose grid sampler tries each point of `--grid` once (multipliers of the method's default, 0.3,1,3 unless
told), one experiment each, named `ladder-<method>-lr<rate>`; the train stage prunes a rate whose validation
loss is already worse than the finished rates' at the same step (its grid cell says `pruned@<step>`), and
the finished rate with the best validation score is kept as train recorded it (`best_metric` in models/tuned/ftpipe_train.json: the
`train.best_metric` of the validation split held out of the training subset, never the evaluation
set, so the choice does not peek at the numbers the table reports). The sweep runs at the full
budget by default and the chosen point's run is the method's row as it is: no run is repeated, and
the row is exactly the run the choice was made on. `--tune-epochs N` makes the sweep shorter
(train.epochs=N, at least 1 since validation runs per epoch; cheaper for a large grid) and then
trains the chosen rate at full length as `ladder-<method>`; a short sweep may favour a rate that
learns fast over one that ends best. The table records the rate, the choice's validation score and
every point of the grid with its score. `features` has no rate and runs once.

`--seeds K` runs each method K times, at its train.seed and the K - 1 after it (`<experiment>-s<seed>`,
after --tune at the chosen rate): its row is the mean with the seeds' standard deviation, and its
interval against the base and its test against the top method cover the seeds too
(ftpipe.tools.ladder_report). "best" is declared only when that test separates the top method from
every other; with one run per method the top row says it was not tested over seeds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ftpipe.tools.ladder_report import seed_intervals, versus_best, write_report

RUN = Path("runs/train")  # where the train stage leaves its RunRecord (dvc.yaml): durations and peak memory
DEFAULT_GRID = "0.3,1,3"  # multipliers of each method's default train.lr


def headline(metrics: dict) -> tuple[str, float]:
    """The metric a reviewer compares first: the task plug-in's headline (else the file's first)."""
    from ftpipe.params import load_params
    from ftpipe.tasks import get_task

    name = get_task(load_params("task").task).headline_metric or next(iter(metrics), None)
    if name not in metrics:
        raise SystemExit(f"error: metrics/tuned.json has no {name}: {sorted(metrics)}")
    return name, metrics[name]


def row(method: str, experiment: str, which: str = "tuned") -> dict:
    from ftpipe.core.records import EVALUATION_RUNS, RunRecord, TimingRecord, TrainRecord
    from ftpipe.core.results import Comparison, Scores

    metric, value = headline(Scores.load_file(f"metrics/{which}.json").numbers())

    timing = TimingRecord.load(EVALUATION_RUNS / which, missing_ok=True)
    made = TrainRecord.load("models/tuned") if which == "tuned" else None
    ran = RunRecord.load(RUN) if which == "tuned" else None
    compared = Comparison.load_file("metrics/compare.json", missing_ok=True) if which == "tuned" else None
    tested = compared.significance.get(metric) if compared else None
    low, high = tested.ci95 if tested else (None, None)
    interval = {"ci95_low": _round(low + value - tested.delta) if tested else None,  # the tuned value's interval: base + delta's
                "ci95_high": _round(high + value - tested.delta) if tested else None,
                "p_vs_base": tested.p_value if tested else None, "vs_best": None}
    validated = next(iter(((made.best_metric if made else None) or {}).items()), (None, None))
    return {"method": method, "experiment": experiment, "metric": metric, "value": round(value, 4), **interval,
            "trainable_params": made.trainable_params if made else 0, "train_seconds": round(ran.train_runtime, 1) if ran else 0,
            "eval_samples_per_s": timing.samples_per_second if timing else None,
            "train_peak_rss_mb": ran.peak_rss_mb if ran else None, "eval_peak_rss_mb": timing.peak_rss_mb if timing else None,
            "lr": made.train.get("lr") if made else None,
            "validation_metric": validated[0], "validation_value": _round(validated[1]), "lr_grid": None}


def _round(value):
    return None if value is None else round(value, 4)


def run_one(method: str, overrides: list[str], name: str | None = None) -> str:
    name = name or f"ladder-{method}"
    cmd = ["dvc", "exp", "run", "-n", name, "-S", f"method={method}", *[a for o in overrides for a in ("-S", o)]]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return name


def exp_ref(name: str) -> str:
    """The git ref of a named experiment, a revision DVC (and git) can fetch from."""
    refs = subprocess.run(["git", "for-each-ref", "--sort=committerdate", "--format=%(refname)", "refs/exps/"], check=True,
                          capture_output=True, text=True).stdout.split()
    out = [ref for ref in refs if ref.endswith("/" + name)]
    if not out:
        raise SystemExit(f"error: no experiment named {name} (run --methods full first, or give --teacher)")
    return out[-1]


def composed(method: str, overrides: list[str]) -> dict:
    """The params a run of `method` with these overrides gets (DVC composes conf/ the same way)."""
    from ftpipe.params import compose

    return compose([*overrides, f"method={method}"])


def grid_lrs(default: float, grid: list[float]) -> list[float]:
    """The learning rates of a sweep: the default times each multiplier, to 3 significant digits, once each."""
    out = []
    for g in grid:
        lr = float(f"{default * g:.3g}")
        if lr not in out:
            out.append(lr)
    return out


def tune(method: str, overrides: list[str], grid: list[float], tune_epochs: float | None, first_run) -> tuple[str, dict, dict]:
    """Search the method's train.lr over `grid` (multipliers of its default), one experiment per rate tried
    (ftpipe.search.sweep: GridSampler, every point once, and a median pruner: a rate already worse than the
    finished ones at the same validation step stops there), and pick the finished rate with the best
    validation score. Returns (experiment, row, predictions) of the chosen rate's run at the full budget.

    Without `tune_epochs` the sweep runs are full-length, so the chosen one is the method's row as is
    (no run twice, and its evaluation is exactly what the choice was made on). With `tune_epochs` the
    sweep is shorter (train.epochs=N) and the chosen rate is trained again at the experiment's full
    length as `ladder-<method>`: the rate is picked on a short budget, the row is never a short run."""
    from ftpipe.search.sweep import grid_note, rate_sweep

    params = composed(method, overrides)
    if not params["train"].get("validation_fraction"):
        raise SystemExit(f"error: --tune picks by validation score; {method} runs with train.validation_fraction=0")
    metric = params["train"].get("best_metric", "eval_loss")
    greater = not metric.endswith("loss")  # as train's checkpoint choice (ftpipe.training.arguments.checkpointing)
    fixed = [o for o in overrides if not o.startswith("train.lr=")]  # the sweep sets the rate
    budget = [f"train.epochs={tune_epochs:g}"] if tune_epochs else []
    points, rows = [], {}
    for point in rate_sweep(method, [f"method={method}", *fixed, *budget], grid_lrs(float(params["train"]["lr"]), grid), metric):
        first_run(point.name)
        points.append(point)
        if point.state == "COMPLETE" and not tune_epochs:  # the row while its run is in the workspace
            rows[point.name] = (row(method, point.name), workspace_predictions())
        print(f"ladder: {method} lr {point.lr:g}: {point.state.lower()}, validation {metric} {point.score}", flush=True)
    finished = [p for p in points if p.state == "COMPLETE"]
    if not finished:
        raise SystemExit(f"error: ladder --tune {method}: no rate finished (every run failed or was pruned)")
    best = (max if greater else min)(finished, key=lambda p: p.score)
    if tune_epochs:
        name = run_one(method, [*fixed, f"train.lr={best.lr:g}"])
        chosen, predictions = row(method, name), workspace_predictions()
    else:
        name, (chosen, predictions) = best.name, rows[best.name]
    # The choice and what it was made on: the chosen rate's validation score in the sweep, and every point's.
    chosen.update(lr=best.lr, validation_metric=metric, validation_value=_round(best.score), lr_grid=grid_note(points))
    return name, chosen, predictions


def workspace_predictions(which: str = "tuned") -> dict:
    """The predictions of the experiment just run: `dvc exp run` leaves them in the workspace."""
    from ftpipe.core.results import read_predictions

    return {row.id: row.to_dict() for row in read_predictions(f"predictions/{which}.jsonl")}


def more_seeds(method: str, overrides: list[str], result: dict, predictions: dict, seeds: int) -> tuple[dict, list[dict]]:
    """The method's run again at seeds + 1 ... + seeds - 1 (after the one at its own train.seed, `result`):
    its row becomes their mean, with the seeds' standard deviation; the predictions one dict per run."""
    import statistics

    if seeds == 1:
        return result, [predictions]
    first = int(composed(method, overrides)["train"]["seed"])
    values, runs = [result["value"]], [predictions]
    for k in range(1, seeds):
        name = run_one(method, [*overrides, f"train.seed={first + k}"], f"{result['experiment']}-s{first + k}")
        values.append(row(method, name)["value"])
        runs.append(workspace_predictions())
    result.update(value=round(statistics.fmean(values), 4), seed_sd=round(statistics.stdev(values), 4), seeds=seeds,
                  experiment=f"{result['experiment']} (+{seeds - 1} seeds)")
    return result, runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", required=True, help="comma-separated conf/method names")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], help="a param override for every run")
    parser.add_argument("--for", dest="per_method", nargs=2, action="append", default=[], metavar=("METHOD", "KEY=VALUE"),
                        help="a param override for one method's run (after the -S ones)")
    parser.add_argument("--teacher", help="revision whose models/tuned teaches distill (default: the ladder's full run)")
    parser.add_argument("--tune", action="store_true", help="sweep each method's train.lr over --grid, pick by validation score")
    parser.add_argument("--grid", default=DEFAULT_GRID, help=f"--tune's multipliers of each method's default lr (default {DEFAULT_GRID})")
    parser.add_argument("--tune-epochs", type=float, help="--tune's sweep runs this many epochs (at least 1: validation is per "
                                                          "epoch), then the chosen rate trains at full length (default: full-length sweep)")
    parser.add_argument("--seeds", type=int, default=1, help="runs per method at train.seed, +1, ...: the table's mean, "
                                                              "seed SD and seed-aware tests (default 1)")
    args = parser.parse_args(argv)
    methods, grid = [m.strip() for m in args.methods.split(",") if m.strip()], check_args(args)

    from ftpipe.params import load_params
    from ftpipe.tasks import get_task

    rows, predictions, names, base = [], {}, {}, {}

    def first_run(name: str) -> None:  # the base model's row and predictions, from the first experiment's evaluation of it
        if not rows:
            rows.append(row("base model", name, "base"))
            base.update(workspace_predictions("base"))

    for method in sorted(methods, key=lambda m: m == "distill"):  # the teacher first
        overrides = args.overrides + [o for m, o in args.per_method if m == method]
        if method == "distill":
            overrides.append(f"method.teacher.revision={args.teacher or exp_ref(names.get('full', 'ladder-full'))}")
        if args.tune and composed(method, overrides)["method"].get("type") != "features":  # features: no gradient steps, no rate
            name, result, ran = tune(method, overrides, grid, args.tune_epochs, first_run)
            overrides = [*overrides, f"train.lr={result['lr']:g}"]  # the seeds repeat the chosen rate
        else:
            name = run_one(method, overrides)
            first_run(name)
            result, ran = row(method, name), workspace_predictions()
        result, predictions[method] = more_seeds(method, overrides, result, ran, args.seeds)
        names[method] = name
        rows.append(result)
        params = load_params("task", "evaluate")
        task, resamples, seed = get_task(params.task), params.evaluate.bootstrap_resamples, params.evaluate.seed
        seed_intervals(rows, predictions, base, task, resamples, seed)
        versus_best(rows, predictions, task, resamples, seed)
        write_report(rows)  # after every run: a ladder cut short still leaves its table


def check_args(args) -> list[float]:
    """--tune's grid, once every option is known to make sense: else one line naming it."""
    try:
        grid = [float(g) for g in args.grid.split(",") if g.strip()]
    except ValueError:
        sys.exit(f"error: --grid {args.grid}: comma-separated numbers (multipliers of the default lr), such as {DEFAULT_GRID}")
    if not grid or min(grid) <= 0:
        sys.exit(f"error: --grid {args.grid}: positive multipliers of the default lr, such as {DEFAULT_GRID}")
    if args.tune_epochs is not None and args.tune_epochs < 1:
        sys.exit("error: --tune-epochs must be at least 1 (validation runs once per epoch)")
    if args.seeds < 1:
        sys.exit(f"error: --seeds {args.seeds}: at least 1 run per method")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods + [m for m, _ in args.per_method] if not Path(f"conf/method/{m}.yaml").exists()]
    if unknown:
        sys.exit(f"error: no conf/method/{unknown[0]}.yaml (known: {', '.join(sorted(p.stem for p in Path('conf/method').glob('*.yaml')))})")
    return grid


if __name__ == "__main__":
    main()

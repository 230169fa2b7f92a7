"""`python -m ftpipe.ladder`: every method on the same data, one DVC experiment each, compared in one table.

    python -m ftpipe.ladder --methods features,freeze,full,lora,dora,ia3,prompt_tuning,distill \\
        -S experiment=yelp_bert -S model=minilm -S data=yelp_local --for lora train.lr=5e-4

Each method runs as `dvc exp run -n ladder-<method> -S method=<method> <your -S overrides>`, one
after another in the workspace (so `dvc exp show` lists them all, and relative data paths keep
working); `distill` runs last, taught by the `full` experiment (fetched by DVC at its experiment
ref) unless `--teacher` names a revision. The table goes to reports/methods.md and, for
`dvc plots show reports/methods.csv --x method --y <metric> --template bar_horizontal`, to
reports/methods.csv: the base model first, then per method the headline metric, trainable
parameters, train time, evaluation samples/s and peak memory. After the ladder the workspace holds
the last experiment's outputs; `dvc exp apply <name>` brings back any other.

`--for METHOD KEY=VALUE` adds an override to one method's run only: the learning rate that suits
full fine-tuning (5e-5) barely moves a LoRA adapter or a lone classification head.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

REPORT, TABLE = Path("reports/methods.md"), Path("reports/methods.csv")
COLUMNS = ["method", "experiment", "metric", "value", "ci95_low", "ci95_high", "p_vs_base", "vs_best",
           "trainable_params", "train_seconds", "eval_samples_per_s", "train_peak_rss_mb", "eval_peak_rss_mb"]


def read(path: str) -> dict:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else {}


def headline(metrics: dict) -> tuple[str, float]:
    """The metric a reviewer compares first: the task plug-in's headline (else the file's first)."""
    from ftpipe.params import load_params
    from ftpipe.tasks import get_task

    name = get_task(load_params("task").task).headline_metric or next(iter(metrics), None)
    if name not in metrics:
        raise SystemExit(f"error: metrics/tuned.json has no {name}: {sorted(metrics)}")
    return name, metrics[name]


def row(method: str, experiment: str, which: str = "tuned") -> dict:
    metric, value = headline(read(f"metrics/{which}.json"))
    from ftpipe import records

    timing = records.TIMING.read(f"plots/{which}", missing_ok=True)
    train = records.TRAIN.read("models/tuned", missing_ok=True) if which == "tuned" else {}
    tested = (read("metrics/compare.json").get("significance") or {}).get(metric, {}) if which == "tuned" else {}
    low, high = tested.get("ci95", [None, None])
    interval = {"ci95_low": _round(low + value - tested["delta"]) if tested else None,  # the tuned value's interval: base + delta's
                "ci95_high": _round(high + value - tested["delta"]) if tested else None, "p_vs_base": tested.get("p_value"), "vs_best": None}
    return {"method": method, "experiment": experiment, "metric": metric, "value": round(value, 4), **interval,
            "trainable_params": train.get("trainable_params", 0), "train_seconds": round(train.get("train_runtime", 0), 1),
            "eval_samples_per_s": timing.get("samples_per_second"), "train_peak_rss_mb": train.get("peak_rss_mb"),
            "eval_peak_rss_mb": timing.get("peak_rss_mb")}


def _round(value):
    return None if value is None else round(value, 4)


def versus_best(rows: list[dict], predictions: dict[str, dict], task, resamples: int, seed: int) -> None:
    """Fill `vs_best` for the tuned rows: does each method differ from the best one at the 5% level?

    A paired bootstrap over the evaluation examples (as compare's) of each method against the best,
    the p-values Holm-corrected for the number of methods compared (it controls the chance of any
    false "differs" at 5%)."""
    from ftpipe.significance import paired_bootstrap

    tuned = [r for r in rows if r["method"] in predictions]
    if not tuned:
        return
    best = max(tuned, key=lambda r: r["value"])
    raw = {}
    for r in tuned:
        if r is best:
            continue
        ids = [i for i in predictions[best["method"]] if i in predictions[r["method"]]]
        mine, _ = task.example_stats([predictions[r["method"]][i] for i in ids])
        theirs, to_metrics = task.example_stats([predictions[best["method"]][i] for i in ids])
        tested = paired_bootstrap(mine, theirs, to_metrics, resamples, seed)
        raw[r["method"]] = (tested.get(best["metric"]) or next(iter(tested.values())))["p_value"]
    adjusted, running = {}, 0.0
    for k, (method, p) in enumerate(sorted(raw.items(), key=lambda item: item[1])):  # Holm's step-down
        running = max(running, min(1.0, (len(raw) - k) * p))
        adjusted[method] = running
    for r in tuned:
        r["vs_best"] = "best" if r is best else (f"{'differs' if adjusted[r['method']] < 0.05 else 'within noise'} "
                                                 f"(Holm p {adjusted[r['method']]:.3g})")


def run_one(method: str, overrides: list[str]) -> str:
    name = f"ladder-{method}"
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


def write_report(rows: list[dict]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with open(TABLE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    metric = rows[0]["metric"]
    lines = ["# Methods compared", "", f"Same data, base model and seeds; `{metric}` on the evaluation set (QA F1 is 0-100, other metrics 0-1),",
             "with its 95% interval (paired bootstrap against the base, as in reports/compare.md) and whether it differs",
             "from the best method at the 5% level (paired bootstrap against the best, Holm-corrected for the methods compared).", "",
             f"| method | {metric} | 95% interval | p vs base | vs best | trainable params | train s | eval samples/s | train peak MB | eval peak MB |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        interval = f"[{r['ci95_low']}, {r['ci95_high']}]" if r["ci95_low"] is not None else ""
        p = "" if r["p_vs_base"] is None else ("< 0.001" if r["p_vs_base"] < 0.001 else f"{r['p_vs_base']:.3g}")
        lines.append(f"| {r['method']} | {r['value']} | {interval} | {p} | {r['vs_best'] or ''} | {r['trainable_params']:,} | {r['train_seconds']} "
                     f"| {r['eval_samples_per_s']} | {r['train_peak_rss_mb'] or ''} | {r['eval_peak_rss_mb']} |")
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def workspace_predictions() -> dict:
    """The tuned predictions of the experiment just run: `dvc exp run` leaves them in the workspace."""
    with open("predictions/tuned.jsonl") as fh:
        return {r["id"]: r for r in map(json.loads, fh)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", required=True, help="comma-separated conf/method names")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], help="a param override for every run")
    parser.add_argument("--for", dest="per_method", nargs=2, action="append", default=[], metavar=("METHOD", "KEY=VALUE"),
                        help="a param override for one method's run (after the -S ones)")
    parser.add_argument("--teacher", help="revision whose models/tuned teaches distill (default: the ladder's full run)")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods + [m for m, _ in args.per_method] if not Path(f"conf/method/{m}.yaml").exists()]
    if unknown:
        sys.exit(f"error: no conf/method/{unknown[0]}.yaml (known: {', '.join(sorted(p.stem for p in Path('conf/method').glob('*.yaml')))})")

    from ftpipe.params import load_params
    from ftpipe.tasks import get_task

    rows, predictions = [], {}
    for method in sorted(methods, key=lambda m: m == "distill"):  # the teacher first
        overrides = args.overrides + [o for m, o in args.per_method if m == method]
        if method == "distill":
            overrides.append(f"method.teacher.revision={args.teacher or exp_ref('ladder-full')}")
        name = run_one(method, overrides)
        if not rows:
            rows.append(row("base model", name, "base"))
        rows.append(row(method, name))
        predictions[method] = workspace_predictions()
        params = load_params("task", "evaluate")
        versus_best(rows, predictions, get_task(params.task), params.evaluate.bootstrap_resamples, params.evaluate.seed)
        write_report(rows)  # after every run: a ladder cut short still leaves its table


if __name__ == "__main__":
    main()

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
COLUMNS = ["method", "experiment", "metric", "value", "trainable_params", "train_seconds", "eval_samples_per_s", "train_peak_rss_mb", "eval_peak_rss_mb"]


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
    return {"method": method, "experiment": experiment, "metric": metric, "value": round(value, 4),
            "trainable_params": train.get("trainable_params", 0), "train_seconds": round(train.get("train_runtime", 0), 1),
            "eval_samples_per_s": timing.get("samples_per_second"), "train_peak_rss_mb": train.get("peak_rss_mb"),
            "eval_peak_rss_mb": timing.get("peak_rss_mb")}


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
    lines = ["# Methods compared", "", f"Same data, base model and seeds; `{metric}` on the evaluation set (QA F1 is 0-100, other metrics 0-1).", "",
             f"| method | {metric} | trainable params | train s | eval samples/s | train peak MB | eval peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['value']} | {r['trainable_params']:,} | {r['train_seconds']} | {r['eval_samples_per_s']} "
                     f"| {r['train_peak_rss_mb'] or ''} | {r['eval_peak_rss_mb']} |")
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


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

    rows = []
    for method in sorted(methods, key=lambda m: m == "distill"):  # the teacher first
        overrides = args.overrides + [o for m, o in args.per_method if m == method]
        if method == "distill":
            overrides.append(f"method.teacher.revision={args.teacher or exp_ref('ladder-full')}")
        name = run_one(method, overrides)
        if not rows:
            rows.append(row("base model", name, "base"))
        rows.append(row(method, name))
        write_report(rows)  # after every run: a ladder cut short still leaves its table


if __name__ == "__main__":
    main()

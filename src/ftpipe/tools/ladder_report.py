"""The ladder's table (reports/methods.md and .csv) and its decisions: each method against the base and
against the top method, over the evaluation examples and, with `--seeds K`, over each method's K runs.

Predictions come in per method as a list, one {id: row} per run (training seed). The intervals are
ftpipe.significance.run_bootstrap's: paired over the examples every run scored, and with several runs
per method over the runs too. "best" is declared only where that seed-aware test separates the top
method from every other (Holm-corrected); with one run per method the top row says so instead.
"""

from __future__ import annotations

import csv
from pathlib import Path

REPORT, TABLE = Path("reports/methods.md"), Path("reports/methods.csv")
COLUMNS = ["method", "experiment", "metric", "value", "seed_sd", "seeds", "ci95_low", "ci95_high", "p_vs_base", "vs_best",
           "trainable_params", "train_seconds", "eval_samples_per_s", "train_peak_rss_mb", "eval_peak_rss_mb",
           "lr", "validation_metric", "validation_value", "lr_grid"]


def _stats(task, runs: list[dict], ids: list[str]):
    """Each run's per-example statistics over `ids`, and the task's to_metrics."""
    out, to_metrics = [], None
    for by_id in runs:
        values, to_metrics = task.example_stats([by_id[i] for i in ids])
        out.append(values)
    return out, to_metrics


def _tested(task, a_runs: list[dict], b_runs: list[dict], metric: str, resamples: int, seed: int) -> dict:
    from ftpipe.significance import interval_and_tests, run_bootstrap

    ids = sorted(set.intersection(*(set(r) for r in a_runs + b_runs)))
    (a, to_metrics), (b, _) = _stats(task, a_runs, ids), _stats(task, b_runs, ids)
    observed, replicates = run_bootstrap(a, b, to_metrics, resamples, seed)
    name = metric if metric in observed else next(iter(observed))
    return interval_and_tests(observed[name], replicates[name], margin=0.0)


def seed_intervals(rows: list[dict], predictions: dict[str, list[dict]], base: dict, task, resamples: int, seed: int) -> None:
    """For methods with several runs: the mean's 95% interval and p against the base model, seed-aware
    (one run's interval, from its compare stage, is already in the row)."""
    for r in rows:
        runs = predictions.get(r["method"]) or []
        if len(runs) > 1:
            tested = _tested(task, [base], runs, r["metric"], resamples, seed)
            base_value = r["value"] - tested["delta"]
            r.update(ci95_low=round(base_value + tested["ci95"][0], 4), ci95_high=round(base_value + tested["ci95"][1], 4),
                     p_vs_base=tested["p_value"])


def versus_best(rows: list[dict], predictions: dict[str, list[dict]], task, resamples: int, seed: int) -> None:
    """Fill `vs_best`: each method against the top one at the 5% level, Holm-corrected for the number of
    methods compared (it bounds the chance of any false "differs" at 5%). The top method is "best" only
    if every method has several runs and each differs from it; else it is "top" with what keeps it from best."""
    tuned = [r for r in rows if r["method"] in predictions]
    if not tuned:
        return
    top = max(tuned, key=lambda r: r["value"])
    raw = {r["method"]: _tested(task, predictions[r["method"]], predictions[top["method"]], top["metric"], resamples, seed)["p_value"]
           for r in tuned if r is not top}
    adjusted, running = {}, 0.0
    for k, (method, p) in enumerate(sorted(raw.items(), key=lambda item: item[1])):  # Holm's step-down
        running = max(running, min(1.0, (len(raw) - k) * p))
        adjusted[method] = running
    for r in tuned:
        if r is not top:
            r["vs_best"] = f"{'differs' if adjusted[r['method']] < 0.05 else 'within noise'} (Holm p {adjusted[r['method']]:.3g})"
    close = sorted(m for m, p in adjusted.items() if p >= 0.05)
    one_seed = min(len(predictions[r["method"]]) for r in tuned) < 2
    top["vs_best"] = ("top (one seed per method: --seeds K tests over seeds)" if one_seed
                      else f"top, within noise of {', '.join(close)}" if close else "best")


def write_report(rows: list[dict]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with open(TABLE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    metric = rows[0]["metric"]
    lines = ["# Methods compared", "", f"Same data and base model; `{metric}` on the evaluation set (QA F1 is 0-100, other metrics 0-1):",
             "with --seeds K, the mean over K training seeds ± their standard deviation. Its 95% interval and p against the",
             "base, and whether it differs from the top method at the 5% level (Holm-corrected for the methods compared),",
             "come from a paired bootstrap over the evaluation examples and, with several seeds, over the seeds too; \"best\"",
             "only where that test separates the top method from every other. lr: the run's learning rate; validation: its",
             "best validation score (the held-out part of the training subset, never the evaluation set); lr grid: with",
             "--tune, each rate tried and its validation score, the lowest loss (or highest score) chosen.", "",
             f"| method | {metric} | ± seed SD | 95% interval | p vs base | vs best | lr | validation | lr grid (validation) "
             "| trainable params | train s | eval samples/s | train peak MB | eval peak MB |",
             "|---|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        interval = f"[{r['ci95_low']}, {r['ci95_high']}]" if r["ci95_low"] is not None else ""
        p = "" if r["p_vs_base"] is None else ("< 0.001" if r["p_vs_base"] < 0.001 else f"{r['p_vs_base']:.3g}")
        sd = "" if r.get("seed_sd") is None else f"{r['seed_sd']} ({r['seeds']} seeds)"
        lr = "" if r.get("lr") is None else f"{r['lr']:g}"
        validated = "" if r.get("validation_value") is None else f"{r['validation_metric']} {r['validation_value']}"
        lines.append(f"| {r['method']} | {r['value']} | {sd} | {interval} | {p} | {r['vs_best'] or ''} | {lr} | {validated} "
                     f"| {r.get('lr_grid') or ''} | {r['trainable_params']:,} | {r['train_seconds']} | {r['eval_samples_per_s']} "
                     f"| {r['train_peak_rss_mb'] or ''} | {r['eval_peak_rss_mb']} |")
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)

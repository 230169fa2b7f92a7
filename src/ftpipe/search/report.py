"""reports/search.md and its plot files: the verdict, every trial (params, validation score, state, steps,
time, experiment), the parameters' importances, and CSV files for `dvc plots show`:

    dvc plots show reports/search/history.csv -x number -y best      # the optimisation history
    dvc plots show reports/search/trials.csv -x train.lr -y value    # a parameter against the score
"""

from __future__ import annotations

import csv
from pathlib import Path

from ftpipe.core.markdown import inert

REPORT, PLOTS = Path("reports/search.md"), Path("reports/search")


def trial_rows(study) -> list[dict]:
    """One row per trial the budget counts, in order (interrupted trials, rerun, are listed apart)."""
    from ftpipe.search.study import counted

    rows = []
    for t in counted(study.get_trials(deepcopy=False)):
        steps = t.user_attrs.get("steps")
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value if t.value is not None else
                     (t.intermediate_values.get(last) if last is not None else None),
                     "steps": steps if steps is not None else last, "max_steps": t.user_attrs.get("max_steps"),
                     "seconds": t.user_attrs.get("seconds"), "experiment": t.user_attrs.get("experiment", ""),
                     "worker": t.user_attrs.get("worker", ""), **t.params})
    return rows


def importances(study) -> dict[str, float]:
    """Optuna's parameter importances over the finished trials (empty below two, or when every value ties)."""
    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # a space no finished trials share, or a constant objective
        return {}


def write_plots(rows: list[dict], direction: str) -> None:
    PLOTS.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(PLOTS / "trials.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    best, history = None, []
    for r in rows:
        if r["state"] == "COMPLETE":
            better = best is None or (r["value"] < best if direction == "minimize" else r["value"] > best)
            best = r["value"] if better else best
        history.append({"number": r["number"], "value": r["value"] if r["state"] == "COMPLETE" else "", "best": best if best is not None else ""})
    with open(PLOTS / "history.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["number", "value", "best"])
        writer.writeheader()
        writer.writerows(history)


def _cell(value) -> str:
    if value is None or value == "":
        return ""
    return f"{value:.4g}" if isinstance(value, float) else inert(str(value))


def write_report(study, cfg, promotion, interrupted: int) -> Path:
    """reports/search.md (and the plot files); returns its path."""
    rows = trial_rows(study)
    write_plots(rows, cfg.direction)
    params = list(dict.fromkeys(k for r in rows for k in r if k not in ("number", "state", "value", "steps", "max_steps",
                                                                      "seconds", "experiment", "worker")))
    states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    lines = [f"# Search: {inert(study.study_name)}", "",
             f"**{inert(promotion.verdict)}**", "",
             f"Objective: {cfg.metric} on the validation split ({cfg.direction}), never the evaluation set. "
             f"{len(rows)} trials of {cfg.n_trials}: " + ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n)
             + (f"; {interrupted} interrupted and rerun" if interrupted else "") + f". Config: {inert(cfg.source)}.", ""]
    if promotion.best:
        lines += [f"Best configuration: `{' '.join(promotion.best)}`. Promotion runs (evaluation set, seed-aware bootstrap over "
                  f"examples and seeds): default {', '.join(promotion.runs[0])}; best {', '.join(promotion.runs[1])}.", ""]
    lines += ["## Trials", "", "Value: the best validation score (a pruned trial: its last reported one, never counted as "
              "finished); steps: optimizer steps trained of the full run's.", "",
              "| # | state | value | steps | seconds | " + " | ".join(map(inert, params)) + " | experiment |",
              "|---:|---|---:|---:|---:|" + "---|" * len(params) + "---|"]
    for r in rows:
        steps = f"{r['steps']}/{r['max_steps']}" if r.get("max_steps") else _cell(r["steps"])
        lines.append(f"| {r['number']} | {r['state'].lower()} | {_cell(r['value'])} | {steps} | {_cell(r['seconds'])} | "
                     + " | ".join(_cell(r.get(p)) for p in params) + f" | {inert(r['experiment'])} |")
    found = importances(study)
    lines += ["", "## Parameter importances", "",
              "Optuna's fANOVA over the finished trials (pruned ones have no final score; with few finished trials, a rough guide):", ""]
    lines += [f"- {inert(k)}: {v:.3f}" for k, v in found.items()] or ["- not enough finished trials (two or more, with differing scores)"]
    lines += ["", "Plots: `dvc plots show reports/search/history.csv -x number -y best` (the history) and "
              "`dvc plots show reports/search/trials.csv -x <param> -y value` (a parameter against the score).", ""]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines))
    return REPORT

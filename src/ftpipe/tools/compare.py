"""Compare two runs, or two groups of runs (training seeds), on the examples both evaluated.

    ftpipe-compare workspace exp-lr2e5                      # two runs: names from `dvc exp show`, commits, tags
    ftpipe-compare base=seed-a-* lr=seed-b-*                 # two groups of seeds: names, or a prefix and *
    ftpipe-compare fp32-run int8-run --margin 0.02 --md      # an equivalence verdict, as a pull-request comment

For every headline metric of the task: A, B (the mean over an arm's runs, ± the seeds' standard
deviation), B - A with its 95% interval and p-value, and a verdict: B better, A better, equivalent within
±margin (two one-sided tests at 5%), or within noise. Intervals come from a bootstrap over the examples
(paired: the same examples, the same draw) and, with several runs per arm, over the runs too
(ftpipe.significance.run_bootstrap); with one run per arm, training noise is not covered, and the report
says so. Then why the runs differ (ftpipe.tools.why). `--json` for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ftpipe.core.errors import FtpipeError, fail
from ftpipe.core.markdown import inert, p_value
from ftpipe.tools import runs as runs_io
from ftpipe.tools.runs import Run, RunError
from ftpipe.tools.why import differences, eval_set, label


def parse_arm(spec: str, default: str) -> tuple[str, list[str]]:
    """`name`, or `label=name1,name2,...` (a name may end in * for every experiment it prefixes)."""
    arm_label, _, names = spec.rpartition("=") if "=" in spec else (default, "", spec)
    listed = [name.strip() for name in names.split(",") if name.strip()]
    if not listed:
        raise RunError(spec, "names no run: give a name, or label=name1,name2")
    return arm_label or default, listed


def check_comparable(arms: list[list[Run]], unpaired: bool) -> bool:
    """True if every run scored the same examples with the same references (a paired comparison)."""
    everyone = [run for arm in arms for run in arm]
    types = {run.task_type for run in everyone}
    if len(types) > 1:
        raise RunError(" vs ".join(run.name for run in everyone), f"runs of different task types ({', '.join(sorted(types))}): nothing to compare")
    first = everyone[0]
    for run in everyone[1:]:
        found = eval_set(first, run)
        if found and not unpaired:
            raise RunError(f"{first.name} vs {run.name}", f"not comparable: the eval sets differ ({found[0].key}: {found[0].a} vs {found[0].b}); "
                                                          "--unpaired compares them as independent samples")
        if found:
            return False
    return True


def statistics(task, arm: list[Run], ids: list[str] | None):
    """Each run's per-example statistics (in `ids` order when paired) and the task's to_metrics."""
    stats, to_metrics = [], None
    for run in arm:
        rows = {row.id: row for row in run.rows}
        ordered = [rows[i] for i in ids] if ids is not None else run.rows
        values, to_metrics = task.example_stats([row.to_dict() for row in ordered])
        stats.append(values)
    return stats, to_metrics


def compare(arms: list[list[Run]], labels: tuple[str, str], margin: float | None, resamples: int, seed: int, unpaired: bool) -> dict:
    from ftpipe.params import validate
    from ftpipe.significance import interval_and_tests, run_bootstrap, verdict
    from ftpipe.tasks import get_task

    paired = check_comparable(arms, unpaired)
    task = get_task(validate(arms[0][0].params, ("task",)).task)
    ids = sorted(row.id for row in arms[0][0].rows) if paired else None
    (stats_a, to_metrics), (stats_b, _) = statistics(task, arms[0], ids), statistics(task, arms[1], ids)
    scale = 100.0 if task.metric_scale == "0-100" else 1.0
    margin = margin if margin is not None else 0.01 * scale  # one point of the headline metric
    observed, replicates = run_bootstrap(stats_a, stats_b, to_metrics, resamples, seed, paired=paired)
    metrics = {}
    for name in observed:
        values = [[float(to_metrics(run.sum(0), len(run))[name]) for run in arm] for arm in (stats_a, stats_b)]
        tested = interval_and_tests(observed[name], replicates[name], margin)
        metrics[name] = {"a": _summary(values[0]), "b": _summary(values[1]), **tested, "verdict": verdict(tested, labels),
                         "variance": _variance(values, stats_a + stats_b, to_metrics, name, resamples, seed)}
    found = differences(arms[0][0], arms[1][0])
    return {"labels": list(labels), "runs": [[run.name for run in arm] for arm in arms], "paired": paired,
            "examples": len(ids) if ids is not None else [len(arm[0].rows) for arm in arms], "margin": margin,
            "resamples": resamples, "seed": seed, "headline": task.headline_metric or next(iter(observed)), "metrics": metrics,
            "why": {"label": label(found), "differences": [vars(d) for d in found]}}


def _summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "seed_sd": float(np.std(values, ddof=1)) if len(values) > 1 else None, "runs": len(values)}


def _variance(values, all_stats, to_metrics, name, resamples, seed) -> dict | None:
    """With several runs per arm: the variance of a run's metric across seeds (pooled over the arms) against
    its variance across redrawn examples (the mean over runs): the share of the noise that is training's."""
    if min(len(v) for v in values) < 2:
        return None
    seed_var = float(np.mean([np.var(v, ddof=1) for v in values]))
    rng = np.random.default_rng(seed)
    sample_vars = []
    for stats in all_stats:
        counts = rng.multinomial(len(stats), np.full(len(stats), 1.0 / len(stats)), size=min(resamples, 200)).astype(np.float64)
        sample_vars.append(float(np.var(to_metrics(counts @ stats, len(stats))[name], ddof=1)))
    sample_var = float(np.mean(sample_vars))
    return {"seed": seed_var, "sample": sample_var, "seed_share": seed_var / (seed_var + sample_var) if seed_var + sample_var else 0.0}


def render(result: dict, markdown: bool) -> str:
    """The table, the note on what the intervals cover, and why the runs differ; as text or as markdown."""
    a, b = result["labels"]
    head = ["metric", a, b, f"{b} - {a}", "95% interval", "p", f"p (equivalent within ±{result['margin']:g})", "verdict"]
    rows = [[name, _cell(m["a"]), _cell(m["b"]), f"{m['delta']:+.4f}", f"[{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}]",
             p_value(m["p_value"]), p_value(m["p_equivalent"]), m["verdict"]] for name, m in result["metrics"].items()]
    lines = _table(head, rows, markdown)
    lines += ["", _coverage(result)]
    for name, m in result["metrics"].items():
        if m["variance"]:
            v = m["variance"]
            lines.append(f"{name}: {100 * v['seed_share']:.0f}% of a run's variance is the training seed's "
                         f"(seed variance {v['seed']:.2e}, example variance {v['sample']:.2e}).")
    why = result["why"]
    grouped = " (the first run of each arm)" if max(len(r) for r in result["runs"]) > 1 else ""
    lines += ["", f"Why {result['runs'][0][0]} and {result['runs'][1][0]} differ{grouped}: {why['label']}."]
    shown = [[d["kind"], d["key"], _text(d["a"]), _text(d["b"])] for d in why["differences"]]
    if shown:
        lines += [""] + _table(["what", "key", result["runs"][0][0], result["runs"][1][0]], shown, markdown)
    return "\n".join(lines)


def _coverage(result: dict) -> str:
    paired = "paired: the same examples in both" if result["paired"] else "UNPAIRED: the evaluation sets differ, each arm's examples drawn on their own"
    examples = result["examples"] if result["paired"] else " and ".join(map(str, result["examples"]))
    counts = {name: len(runs) for name, runs in zip(result["labels"], result["runs"])}
    single = [name for name, k in counts.items() if k == 1]
    if not single:
        seeds = "and over each arm's runs (training seeds)"
    elif len(single) == 2:
        seeds = "with one run per arm, so training noise (the seed) is not covered: repeat each arm over seeds (train.seed) to include it"
    else:
        several = next(name for name in counts if name not in single)
        seeds = (f"and over {several}'s {counts[several]} runs (training seeds); {single[0]} has one run, "
                 "so its training noise is not covered")
    return (f"Intervals: a bootstrap over {examples} examples ({paired}; {result['resamples']} resamples, seed {result['seed']}), "
            f"{seeds}. Equivalence: two one-sided tests against ±{result['margin']:g}, at 5%.")


def _cell(arm: dict) -> str:
    return f"{arm['mean']:.4f}" + (f" ± {arm['seed_sd']:.4f} ({arm['runs']} seeds)" if arm["seed_sd"] is not None else "")


def _text(value) -> str:
    return "–" if value is None else " ".join(str(value).split())[:80]


def _table(head: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        return ["| " + " | ".join(inert(c) for c in head) + " |", "|" + "---|" * len(head)] + [
            "| " + " | ".join(inert(c) for c in row) + " |" for row in rows]
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="run A: an experiment, commit, tag, `workspace`; or label=name1,name2 (seeds)")
    parser.add_argument("b", help="run B, the same way")
    parser.add_argument("--margin", type=float, help="equivalence margin in the headline's units (default: one point)")
    parser.add_argument("--which", choices=["tuned", "base"], default="tuned", help="whose predictions (default: tuned)")
    parser.add_argument("--unpaired", action="store_true", help="compare runs whose evaluation sets differ as independent samples")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--md", action="store_true", help="markdown, for a pull-request comment")
    output.add_argument("--json", action="store_true", help="JSON, for scripts")
    args = parser.parse_args(argv)
    try:
        from dvc.repo import Repo

        (label_a, names_a), (label_b, names_b) = parse_arm(args.a, "A"), parse_arm(args.b, "B")
        with Repo(".") as repo:
            arms = [[runs_io.load(name, rev, args.which) for name, rev in runs_io.resolve(repo, names)] for names in (names_a, names_b)]
        result = compare(arms, (label_a, label_b), args.margin, args.resamples, args.seed, args.unpaired)
    except FtpipeError as err:  # a run that cannot be read or compared, bad params: one line
        fail(err)
    if not result["paired"]:
        print("warning: the evaluation sets differ: the comparison is unpaired, and wider for it", file=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else render(result, args.md))


if __name__ == "__main__":
    main()

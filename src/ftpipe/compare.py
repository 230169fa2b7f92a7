"""`compare`: tuned minus base for every metric, and a report of what tuning fixed and broke."""

from __future__ import annotations

from pathlib import Path

from ftpipe.core.io import atomic_output
from ftpipe.core.markdown import inert as _md, interval as _interval
from ftpipe.core.records import EVALUATION_RUNS, TimingRecord, TrainRecord
from ftpipe.core.results import Comparison, Interval, PredictionRow, Scores, read_predictions

COUNTS = ("examples", "total")  # sizes, not scores: no delta for them
Pair = tuple[PredictionRow, PredictionRow]  # base's and tuned's row for one example


def compare(base_metrics: Path, tuned_metrics: Path, base_predictions: Path, tuned_predictions: Path,
            out_metrics: Path, report: Path, n_examples: int, timings: tuple[Path, Path], tuned_record: Path,
            task=None, resamples: int = 1000, seed: int = 0, speed_report: Path | None = None) -> dict:
    """`timings`: base and tuned evaluation timing.json; `tuned_record`: models/tuned/ftpipe_train.json;
    `task`: the plug-in whose example_stats the paired bootstrap redraws (None: no intervals);
    `speed_report`: where the evaluation speeds go (None: into the report). They vary run to run, so
    the pipeline keeps them out of the git-tracked report: rerunning evaluation leaves git clean."""
    tuned_scores = Scores.load_file(tuned_metrics)
    headline = tuned_scores.headline  # metrics/tuned.json holds the headline first
    base, tuned = Scores.load_file(base_metrics).numbers(), tuned_scores.numbers()
    delta = {key: tuned[key] - base[key] for key in tuned if key in base and key not in COUNTS}

    base_rows = {row.id: row for row in read_predictions(base_predictions)}
    pairs = [(base_rows[row.id], row) for row in read_predictions(tuned_predictions) if row.id in base_rows]
    comparison = Comparison(delta, *significance(task, pairs, resamples, seed)) if task is not None else Comparison(delta)
    comparison.write(out_metrics)
    tested = comparison.significance

    lines = ["# Base vs tuned", "", "| metric | base | tuned | delta | 95% interval | p |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {_md(key)} | {base[key]:.4f} | {tuned[key]:.4f} | {delta[key]:+.4f} | {_interval(tested.get(key))} |" for key in delta]
    lines += ["", f"Per example: tuning improved {sum(t.score > b.score for b, t in pairs)}, "
              f"worsened {sum(t.score < b.score for b, t in pairs)}, of {len(pairs)}.", ""]
    if tested:
        lines += [f"Intervals and p-values: a paired bootstrap over the {len(pairs)} examples ({resamples} resamples, seed {seed}), "
                  "each metric on its own (no correction for testing several); a p-value is never below 2 / (resamples + 1)."
                  + (f" McNemar's exact test on right/wrong per example: p = {comparison.mcnemar_p:.3g}." if comparison.mcnemar_p is not None else ""), ""]
    timed = [TimingRecord.load_file(path) for path in timings]
    precisions = [t.precision for t in timed]
    if "int8" in precisions:  # deterministic per machine, so it may sit in the git-tracked report
        lines += [f"Evaluated in {precisions[0]} (base) and {precisions[1]} (tuned): `evaluate.precision: int8` quantizes every "
                  "Linear layer's weights to int8 (torch dynamic quantization), so scores can differ from fp32's "
                  "(benchmarks/README.md measures by how much).", ""]
    speed = speed_lines(headline, base, tuned, timed, TrainRecord.load_file(tuned_record))
    if speed_report is None:
        lines += speed
    else:
        with atomic_output(speed_report) as tmp:
            tmp.write_text("\n".join(["# Evaluation speed", "", *speed[2:]]))
        lines += [f"Evaluation speed (it varies run to run): `{speed_report}`, a DVC-tracked output kept out of git.", ""]
    lines += example_lines(pairs, n_examples)
    with atomic_output(report) as tmp:
        tmp.write_text("\n".join(lines))
    return delta


def example_lines(pairs: list[Pair], n_examples: int) -> list[str]:
    """The examples whose score changed most: "fixed" went up with tuning, "broken" went down."""
    ranked = sorted(pairs, key=lambda p: p[1].score - p[0].score)
    fixed = [p for p in reversed(ranked) if p[1].score > p[0].score][:n_examples]
    broke = [p for p in ranked if p[1].score < p[0].score][:n_examples]
    lines = []
    for title, chosen in (("Fixed by tuning", fixed), ("Broken by tuning", broke)):
        lines += [f"## {title}", ""]
        if not chosen:
            lines += ["(none)", ""]
        for b, t in chosen:
            lines += [f"**{_md(t.id)}**: {_md(t.input)}", "",
                      f"- reference: {_md(t.reference)}", f"- base: {_md(b.prediction)}",
                      f"- tuned: {_md(t.prediction)}", ""]
    return lines


def significance(task, pairs: list[Pair], resamples: int, seed: int) -> tuple[dict[str, Interval], float | None]:
    """Each headline metric's delta with its 95% interval and p-value; McNemar's p-value where every
    example's score is simply 0 or 1 (right or wrong), else None."""
    import numpy as np

    from ftpipe.significance import mcnemar, paired_bootstrap

    if not pairs:
        return {}, None
    base_stats, to_metrics = task.example_stats([b.to_dict() for b, _ in pairs])
    tuned_stats, _ = task.example_stats([t.to_dict() for _, t in pairs])
    tested = {name: Interval.from_dict(t) for name, t in paired_bootstrap(base_stats, tuned_stats, to_metrics, resamples, seed).items()}
    scores = np.array([[b.score, t.score] for b, t in pairs])
    right_or_wrong = np.isin(scores, (0.0, 1.0)).all()
    return tested, mcnemar(scores[:, 0] == 1, scores[:, 1] == 1) if right_or_wrong else None


def speed_lines(headline: str, base: dict, tuned: dict, timings: list[TimingRecord], record: TrainRecord) -> list[str]:
    """Evaluation speed beside the headline metric; a distilled student also beside its teacher,
    whose figures come from the teacher's own run (measured there, perhaps on another machine)."""
    rows = [("base", base.get(headline), timings[0].samples_per_second, timings[0].precision),
            ("tuned", tuned.get(headline), timings[1].samples_per_second, timings[1].precision)]
    teacher = record.teacher
    if teacher:
        rows[1] = (f"tuned (student, {record.trainable_params:,} params)", *rows[1][1:])
        rows.append((f"teacher ({teacher['params']:,} params, {_md(teacher.get('revision') or teacher.get('name', ''))})",
                     teacher.get("metrics", {}).get(headline), teacher.get("timing", {}).get("samples_per_second"),
                     teacher.get("timing", {}).get("precision")))
    lines = ["## Evaluation speed", "", f"| model | {headline} | eval samples/s | precision |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {_num(value)} | {_num(speed)} | {precision or ''} |" for name, value, speed, precision in rows]
    if teacher:
        lines += ["", f"The teacher's figures are from its own run (its metrics/tuned.json and {TimingRecord.file_in(EVALUATION_RUNS / 'tuned')})."]
    return lines + [""]


def _num(value) -> str:
    return "–" if value is None else f"{value:.4g}"

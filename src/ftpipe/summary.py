"""The headline of a run: the last lines `dvc repro` and `dvc exp run` print (stage summary).

The stage is `always_changed`, so it prints even when compare was skipped as unchanged. It only
reads what earlier stages wrote and never fails a run: a summary it cannot make is one line saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftpipe.core.records import ExportRecord
from ftpipe.core.results import Comparison, Scores


def summarize(base: Path, tuned: Path, report: Path, model: Path, export: Path | None = None,
              headline: str | None = None, scale: str = "0-1", compared: Path | None = None) -> list[str]:
    """`headline` and `scale`: the metric the task is judged by (None: the file's first) and its scale;
    `compared`: metrics/compare.json, whose paired-bootstrap interval goes beside the headline's delta."""
    base_m, tuned_m = Scores.load_file(base).numbers(), Scores.load_file(tuned).numbers()
    comparison = Comparison.load_file(compared, missing_ok=True) if compared else None
    tested = comparison.significance if comparison else {}
    names = [k for k in tuned_m if k in base_m]
    names.sort(key=lambda k: k != headline)  # stable: the rest keep the file's order
    if not names:
        return ["summary: no metric shared by the base and tuned metrics files"]
    first, rest = names[0], names[1:]
    b, t = base_m[first], tuned_m[first]
    exp = os.environ.get("DVC_EXP_NAME")
    interval = ""
    if first in tested:
        (low, high), p = tested[first].ci95, tested[first].p_value
        interval = f" [{low:+.3g}, {high:+.3g}], p {'< 0.001' if p < 0.001 else f'= {p:.2g}'}"
    lines = [f"{first} ({scale}): base {b:.4g} -> tuned {t:.4g} ({t - b:+.4g}{interval})"
             + (f"; {', '.join(f'{k} {base_m[k]:.4g} -> {tuned_m[k]:.4g}' for k in rest)}" if rest else "")
             + (f"  [experiment {exp}]" if exp else ""),
             f"report: {report}; tuned model and its card: {model}/README.md"]
    record = ExportRecord.load_file(export) if export and Path(export).exists() else None
    if record and record.pushed:
        lines.append(f"pushed to the Hub: {record.pushed.get('url') or record.pushed.get('repo_id')}")
    return lines


def stale_params(params: Path = Path("params.yaml"), conf_dir: Path = Path("conf")) -> str | None:
    """One line when conf/ changed after params.yaml was composed from it (a hand edit, then `dvc repro`:
    DVC reads params.yaml only, so the edit did not run); None when they agree or nothing is recorded."""
    import yaml

    from ftpipe.params import conf_digest

    recorded = (yaml.safe_load(Path(params).read_text()) or {}).get("conf_digest") if Path(params).exists() else None
    if not recorded or not Path(conf_dir).is_dir() or recorded == conf_digest(conf_dir):
        return None
    return (f"warning: {conf_dir}/ has changed since {params} was composed from it, so this run used {params} as it was: "
            f"run `python -m ftpipe.params` (or `dvc exp run`), then `dvc repro`")

"""Stage summary: print the headline metric of base and tuned, the delta and where the report is.

Always run (`always_changed` in dvc.yaml), after compare and export, so these are the last lines of
every `dvc repro` and `dvc exp run`, also when nothing else had to run.
"""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.core.errors import FtpipeError
from ftpipe.params import load_params
from ftpipe.summary import stale_params, summarize
from ftpipe.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("base", "tuned", "report", "model", "export", "compare"):
        parser.add_argument(f"--{name}", type=Path, required=name not in ("export", "compare"))
    args = parser.parse_args()
    try:
        task = get_task(load_params("task").task)  # the metric it is judged by, and its scale
        lines = summarize(args.base, args.tuned, args.report, args.model, args.export, task.headline_metric, task.metric_scale,
                          args.compare)
        lines += [line for line in [stale_params()] if line]
    except (OSError, ValueError, FtpipeError) as err:  # a summary never fails the run it summarizes
        lines = [f"summary: unavailable ({err})"]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()

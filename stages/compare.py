"""Stage compare: tuned minus base for every metric, and a report of examples tuning fixed or broke."""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (ftpipe from this checkout's src/: see stages/_checkout.py)
from ftpipe.compare import compare
from ftpipe.core.records import TimingRecord
from ftpipe.params import load_params
from ftpipe.core.stage import run
from ftpipe.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("base-metrics", "tuned-metrics", "base-predictions", "tuned-predictions", "base-run", "tuned-run",
                 "tuned-record", "out", "report", "speed"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args()
    params = load_params("evaluate", "task")
    compare(args.base_metrics, args.tuned_metrics, args.base_predictions, args.tuned_predictions,
            args.out, args.report, params.evaluate.report_examples, (TimingRecord.file_in(args.base_run), TimingRecord.file_in(args.tuned_run)), args.tuned_record,
            get_task(params.task), params.evaluate.bootstrap_resamples, params.evaluate.seed, args.speed)


if __name__ == "__main__":
    run(main)

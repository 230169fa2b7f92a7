"""What every stage script shares: loading its params sections and reporting user errors."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

from ftpipe.errors import FtpipeError


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a user error ends it with one line on stderr and exit code 1."""
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        main()
    except FtpipeError as err:
        _fail(str(err))
    except OSError as err:  # a missing or unreadable path given on the command line or in params
        if err.filename is None:
            raise
        _fail(f"{err.filename}: {err.strerror or err}")
    # What the stage cost, on one line a log (and benchmarks/data_scale.py) can read: wall and CPU
    # seconds of this process, its peak resident memory.
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    logging.getLogger("ftpipe.stage").info("%s: done in %.1f s (CPU %.1f s), peak memory %.0f MB", name,
                                           time.perf_counter() - start, time.process_time() - cpu, peak_rss_mb())


def _fail(message: str) -> None:
    # One line however the message was built: a runner's log shows it whole.
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(1)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)

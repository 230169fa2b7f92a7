"""What every stage script shares: loading its params sections and reporting user errors."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from typing import Callable

from ftpipe.core.errors import FtpipeError, fail


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a user error ends it with one line on stderr and exit code 1."""
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    start, cpu = time.perf_counter(), time.process_time()
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    try:
        main()
    except FtpipeError as err:
        fail(str(err))
    except OSError as err:  # a missing or unreadable path, a full disk: what the OS refused, not a bug
        if err.filename is None and err.errno is None and not isinstance(err, shutil.Error):
            raise  # a library's own subclass (requests' ConnectionError, ...): its traceback says where
        fail(f"{err.filename or f'stage {name}'}: {_reason(err)}{_cache_hint(err.filename)}")
    # What the stage cost, on one line a log (and benchmarks/data_scale.py) can read: wall and CPU
    # seconds of this process, its peak resident memory.
    logging.getLogger("ftpipe.stage").info("%s: done in %.1f s (CPU %.1f s), peak memory %.0f MB", name,
                                           time.perf_counter() - start, time.process_time() - cpu, peak_rss_mb())


def _reason(err: OSError) -> str:
    """What went wrong, without the file name the line already starts with."""
    if isinstance(err, shutil.Error) and err.args and isinstance(err.args[0], list):  # copytree: (src, dst, why) per file
        src, _, why = err.args[0][0]
        return f"{len(err.args[0])} file(s) not copied, the first {src}: {why}"
    return err.strerror or str(err)


def _cache_hint(path) -> str:
    """Which variable moves the Hugging Face cache, when the path refused is on the way to it: datasets caches
    what evaluate reads under HOME, which a runner may mount read-only or not at all."""
    if not path:
        return ""
    from huggingface_hub import constants

    caches = [constants.HF_HOME]
    if "datasets" in sys.modules:  # imported by the stage that failed; its cache can be set apart from HF_HOME
        caches.append(sys.modules["datasets"].config.HF_DATASETS_CACHE)
    refused = os.path.abspath(path)
    for cache in map(os.path.abspath, map(str, caches)):
        if cache == refused or cache.startswith(refused + os.sep) or refused.startswith(cache + os.sep):
            return f" (on the way to the Hugging Face cache {cache}: set HF_HOME to a writable folder)"
    return ""


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)

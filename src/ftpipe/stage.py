"""What every stage script shares: loading its params sections and reporting user errors."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from ftpipe.errors import FtpipeError


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a user error ends it with one line on stderr and exit code 1."""
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    try:
        main()
    except FtpipeError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)

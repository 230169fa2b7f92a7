"""Import ftpipe from the checkout this stage script is in, never from an installed copy.

`scripts/setup.sh` installs ftpipe editable from the main workspace. A queued or temporary
experiment (`dvc exp run --queue`, `--temp`) runs in its own copy of the repository under
.dvc/tmp/exps/, and its dvc.lock records the hashes of that copy's src/: without this, it would
import the workspace's src/, edited since, and record code that did not run. Every stage imports
this module first (it sits beside them, so `python stages/x.py` finds it on sys.path[0]).
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
if sys.path[:1] != [SRC]:
    sys.path.insert(0, SRC)

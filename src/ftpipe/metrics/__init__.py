"""ftpipe's metrics as local `evaluate` modules, so they load offline.

`load("classification")` is `evaluate.load(<this folder>/classification)`; pass a Hub name
(`evaluate.load("accuracy")`) instead when online.
"""

from pathlib import Path

METRICS_DIR = Path(__file__).parent


def load(name: str):
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))

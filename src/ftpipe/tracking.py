"""`train.report_to`: experiment trackers beside DVCLive.

DVCLive is always on: LiveLogger (train.py) writes dvclive/train, which dvc.yaml declares and
`dvc plots` / `dvc exp show` read. `train.report_to` lists it and any other transformers
integration (wandb, mlflow, tensorboard, comet_ml, ...), handed to TrainingArguments(report_to=...).
Those read their settings and credentials from the environment only (WANDB_API_KEY,
MLFLOW_TRACKING_URI, ...), never from params, so nothing secret reaches params.yaml or the logs.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftpipe.core.errors import ConfigError

BUILT_IN = "dvclive"  # LiveLogger; transformers' own DVCLive callback would log a second copy


def report_to(cfg, output_dir: Path) -> list[str] | str:
    """TrainingArguments' report_to: the trackers in train.report_to other than DVCLive."""
    names = [name for name in dict.fromkeys(getattr(cfg, "report_to", None) or []) if name != BUILT_IN]
    if not names:
        return "none"
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    available = get_available_reporting_integrations()
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise ConfigError("train.report_to", f"unknown tracker '{name}' (known: {', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
        if name not in available:
            raise ConfigError("train.report_to", f"'{name}' is not installed (pip install {name.replace('_', '-')})")
    if "tensorboard" in names:
        # Beside the checkpoints, not among them: train clears checkpoints/train after a successful run.
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(Path(output_dir).parent / "tensorboard"))
    return names

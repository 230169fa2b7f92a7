"""Trainer callbacks that keep a run honest: it stops when training diverges, and it reports the
train loss of the whole run, resumed or not. The runner (ftpipe.train) puts them first in the list,
so DVCLive records what they set and a diverged step is never logged or saved.
"""

from __future__ import annotations

import math

from transformers import TrainerCallback

from ftpipe.core.errors import FtpipeError


class TrainingDiverged(FtpipeError):
    """The loss or the gradient norm is not finite: every later step would train NaN weights."""


class DivergenceGuard(TrainerCallback):
    """Stops at the first log whose loss or grad norm is NaN or infinite.

    The grad norm matters: the Trainer replaces a NaN step loss by the running mean before logging it
    (logging_nan_inf_filter), so a run whose weights are all NaN can log a finite loss. Raising here,
    before the step's checkpoint and long before the runner moves models/tuned into place, leaves
    the previous outputs as they were.
    """

    KEYS = ("loss", "grad_norm", "eval_loss")

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in self.KEYS:
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise TrainingDiverged(f"training diverged at step {state.global_step}: {key} is {value} "
                                       f"(train.lr={args.learning_rate:g}); lower train.lr or check the data "
                                       "(the previous outputs are kept)")


class RunLoss(TrainerCallback):
    """`train_loss` averaged over every step of the run, not only those since a resume.

    The Trainer averages the steps its own train() call ran, so a resumed run reported another
    train loss than an uninterrupted one. Here each checkpoint, each epoch end with a save and the
    last step close a logging window, so the `loss` entries of log_history, which every checkpoint
    carries, cover every step once; their step-weighted mean is the same for both runs.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or state.global_step >= state.max_steps:
            control.should_log = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "train_loss" in logs:
            total, last = 0.0, 0
            for entry in state.log_history:
                if "loss" in entry:
                    total, last = total + entry["loss"] * (entry["step"] - last), entry["step"]
            if last == state.global_step > 0:  # every step is in a window (else keep the Trainer's own figure)
                # The same dict is the Trainer's returned metrics (ftpipe_train.json); log_history keeps a copy.
                logs["train_loss"] = state.log_history[-1]["train_loss"] = total / last


def callbacks() -> list:
    return [DivergenceGuard(), RunLoss()]

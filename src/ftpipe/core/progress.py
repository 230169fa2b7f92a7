"""Progress of the long loops: training steps, inference batches, tokenization (datasets' `map`).

One setting, the environment variable FTPIPE_PROGRESS:

    auto (unset)  a tqdm bar with rate and ETA on a terminal; plain lines where output is a log
                  (CI, `dvc exp run --queue`, `dvc repro > log`)
    bar, lines    force one of the two
    0, off        nothing

Plain lines come every 10% and at least every FTPIPE_PROGRESS_SECONDS (default 30) seconds, with
step/total, elapsed time, ETA and rate; a loop over in under a second prints none.

An environment variable, not a param: params are stage dependencies in dvc.yaml, so a param that
only changes what the terminal shows would rerun stages whose results do not depend on it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from tqdm.auto import tqdm

PERCENT = 10  # a plain line each time the loop crosses another multiple of this
SHORT = 20  # items: a loop shorter than this gets no percentage lines, only its last (and the timed ones)
_label: list[str] = []  # what `bar()` calls its loop when the caller gives no name (see `named`)


def mode() -> str:
    value = os.environ.get("FTPIPE_PROGRESS", "auto").strip().lower()
    if value in ("0", "off", "false", "no", "none"):
        return "off"
    if value in ("bar", "lines"):
        return value
    return "bar" if sys.stderr.isatty() else "lines"


def seconds() -> float:
    try:
        return max(float(os.environ.get("FTPIPE_PROGRESS_SECONDS", "30")), 0.0)
    except ValueError:
        return 30.0


def follow_setting(cls, quiet: tuple[str, ...] = ()) -> None:
    """Make a tqdm class (ours, datasets') follow FTPIPE_PROGRESS; bars whose description starts
    with one of `quiet` never show."""
    init, display, close, clear = cls.__init__, cls.display, cls.close, cls.clear

    def __init__(self, *args, **kwargs):
        current = mode()
        desc = str(kwargs.get("desc") or "")
        off = current == "off" or (quiet and desc.startswith(quiet))
        self._ftpipe_lines = current == "lines" and not off and not kwargs.get("disable")
        self._ftpipe_step, self._ftpipe_last, self._ftpipe_n = 0, None, None
        if off:
            kwargs["disable"] = True
        elif self._ftpipe_lines:
            # tqdm checks the clock at most this often; the lines themselves are rarer (see _line)
            kwargs.update(leave=False, mininterval=min(1.0, seconds()))
        init(self, *args, **kwargs)

    def _display(self, msg=None, pos=None):
        if not getattr(self, "_ftpipe_lines", False):
            return display(self, msg, pos)
        if msg is None:  # a refresh; close() passes msg="" to erase, which a log cannot
            _line(self)
        return False

    def _close(self):
        if getattr(self, "_ftpipe_lines", False) and not getattr(self, "disable", True):
            _line(self, final=True)
        close(self)

    def _clear(self, *args, **kwargs):
        if not getattr(self, "_ftpipe_lines", False):
            clear(self, *args, **kwargs)

    cls.__init__, cls.display, cls.close, cls.clear = __init__, _display, _close, _clear


def _line(bar, final: bool = False) -> None:
    start = getattr(bar, "start_t", None)
    if start is None:  # tqdm's first refresh, inside its __init__: nothing done yet
        return
    now = time.time()
    last = bar._ftpipe_last or start
    step = int(100 * bar.n / bar.total) // PERCENT if bar.total and bar.total >= SHORT else 0
    if now - start < min(1.0, seconds()) and bar._ftpipe_last is None:
        return  # a loop's first second: most are over by then, and not worth a line
    if final:
        if bar._ftpipe_n == bar.n:
            return  # said already
    elif step <= bar._ftpipe_step and now - last < seconds():
        return
    bar._ftpipe_step, bar._ftpipe_last, bar._ftpipe_n = max(step, bar._ftpipe_step), now, bar.n
    print(_describe(bar, now - start), file=sys.stderr, flush=True)


def _describe(bar, elapsed: float) -> str:
    unit = (bar.unit or "it").strip()
    done = bar.n - getattr(bar, "initial", 0)
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{(bar.desc or 'progress').rstrip(': ')}: {bar.n}"  # tqdm's set_description appends ": "
    if bar.total:
        text += f"/{bar.total} {unit} ({100 * bar.n / bar.total:.0f}%)"
        eta = (bar.total - bar.n) / rate if rate > 0 else None
        text += f", elapsed {tqdm.format_interval(elapsed)}, ETA {tqdm.format_interval(eta) if eta is not None else '?'}"
    else:
        text += f" {unit}, elapsed {tqdm.format_interval(elapsed)}"
    if rate >= 100:
        text += f", {rate:,.0f} {unit}/s"
    elif rate >= 1 or rate == 0:
        text += f", {rate:.3g} {unit}/s"
    else:  # slow steps read better as seconds each
        text += f", {1 / rate:.3g} s/{singular(unit)}"
    return text + (f", {bar.postfix}" if bar.postfix else "")


class Bar(tqdm):
    """ftpipe's own progress bar: tqdm on a terminal, plain lines in a log, nothing when off."""


follow_setting(Bar)


def bar(total: int | None = None, desc: str | None = None, unit: str = "it", initial: int = 0, default: str = "progress") -> Bar:
    """A Bar named `desc`, else by the innermost `named` block around it, else `default`."""
    return Bar(total=total, desc=desc or (_label[-1] if _label else default), unit=unit, initial=initial, dynamic_ncols=True)


@contextlib.contextmanager
def named(label: str):
    """Name the loops inside the block (the evaluate stage calls its task's predict in `evaluate base`)."""
    _label.append(label)
    try:
        yield
    finally:
        _label.pop()


def trainer_callback():
    """A TrainerCallback with a bar over the optimizer steps (and one over each validation pass).

    transformers' own bar is off (`disable_tqdm`): on a log it writes carriage returns, not lines.
    Built on call so that importing this module does not import transformers.
    """
    from transformers import TrainerCallback

    class TrainProgress(TrainerCallback):
        train = evaluation = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.train = bar(total=state.max_steps, desc="train", unit="steps", initial=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.train is not None:
                self.train.update(state.global_step - self.train.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.train is not None and logs and "loss" in logs:
                self.train.set_postfix_str(f"loss={logs['loss']:.4g}", refresh=False)
                self.train.clear()  # the Trainer prints the log line next; the bar comes back on the next step

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if self.evaluation is None and eval_dataloader is not None and hasattr(eval_dataloader, "__len__"):
                self.evaluation = bar(total=len(eval_dataloader), desc="validate", unit="batches")
            if self.evaluation is not None:
                self.evaluation.update(1)

        def on_evaluate(self, args, state, control, **kwargs):
            if self.evaluation is not None:
                self.evaluation.close()
                self.evaluation = None

        def on_train_end(self, args, state, control, **kwargs):
            if self.train is not None:
                self.train.close()
                self.train = None

    return TrainProgress()


def singular(unit: str) -> str:
    """batches -> batch, steps -> step, rows -> row: the unit of "s/<unit>"."""
    return unit[:-2] if unit.endswith(("ches", "shes", "sses", "xes")) else unit.removesuffix("s")

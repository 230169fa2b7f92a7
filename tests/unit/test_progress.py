"""Progress of the long loops (bars on a terminal, plain lines in a log, nothing when off) and the
expected warnings silenced once in ftpipe.core.quiet, while unexpected ones still show."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from conftest import OFFLINE, REPO


def python(code: str, **env) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (progress settings and warning filters are per process), output piped: not a terminal."""
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("FTPIPE_PROGRESS")}  # the test's settings only
    full.update({**OFFLINE, **env})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=full, text=True, capture_output=True, timeout=300)


LOOP = """
    import time
    from ftpipe.core import progress
    with progress.bar(total=40, unit="rows", default="predict") as bar:
        for _ in range(40):
            time.sleep(0.05)
            bar.update(1)
"""


def test_a_log_gets_plain_lines_with_step_total_elapsed_and_eta():
    out = python(LOOP, FTPIPE_PROGRESS_SECONDS="0.5").stderr  # piped: not a terminal, so lines by default
    lines = [line for line in out.splitlines() if line.startswith("predict:")]
    assert "\r" not in out and 2 <= len(lines) <= 12, out  # every 10% at most, not every row
    assert re.fullmatch(r"predict: \d+/40 rows \(\d+%\), elapsed 00:0\d, ETA 00:0\d, [\d.]+ rows/s", lines[0]), lines
    assert lines[-1].startswith("predict: 40/40 rows (100%)")


def test_a_terminal_gets_a_tqdm_bar_and_off_means_nothing():
    bar = python(LOOP, FTPIPE_PROGRESS="bar").stderr
    assert re.search(r"predict: 100%\|.*\| 40/40 \[00:0\d<00:00, .*rows/s\]", bar), bar  # tqdm's, with rate and ETA
    assert python(LOOP, FTPIPE_PROGRESS="0").stderr == ""


def test_a_short_slow_loop_prints_its_end_only_and_units_read_right():
    code = """
        import time
        from ftpipe.core import progress
        with progress.bar(total=10, unit="batches", default="validate") as bar:
            for _ in range(10):
                time.sleep(0.15)
                bar.update(1)
    """
    lines = [line for line in python(code, FTPIPE_PROGRESS="lines").stderr.splitlines() if line.startswith("validate:")]
    assert len(lines) == 1 and lines[0].startswith("validate: 10/10 batches (100%)"), lines
    from ftpipe.core.progress import singular

    assert [singular(u) for u in ("batches", "steps", "rows", "it")] == ["batch", "step", "row", "it"]


def test_a_loop_over_within_a_second_prints_nothing():
    code = "from ftpipe.core import progress\nwith progress.bar(total=5, default='quick') as bar:\n    bar.update(5)\n"
    assert python(code, FTPIPE_PROGRESS="lines").stderr == ""


def test_tokenization_map_follows_the_setting_and_bookkeeping_bars_are_quiet(tmp_path):
    code = f"""
        from ftpipe.core import offline  # noqa: F401  (installs ftpipe.core.quiet, as every stage does)
        import time, datasets
        ds = datasets.Dataset.from_dict({{"x": list(range(400))}})
        ds = ds.map(lambda b: (time.sleep(0.05), {{"y": b["x"]}})[1], batched=True, batch_size=40)
        ds.to_parquet("{tmp_path}/x.parquet")
        ds.select(range(10)).flatten_indices()
    """
    out = python(code, FTPIPE_PROGRESS_SECONDS="0").stderr
    assert re.search(r"^Map: 400/400 examples \(100%\), elapsed", out, flags=re.M), out
    assert "Creating parquet" not in out and "Flattening the indices" not in out and "\r" not in out, out
    assert python(code, FTPIPE_PROGRESS="0").stderr == ""


def test_training_callback_counts_steps_from_a_resumed_step(capsys, monkeypatch):
    from ftpipe.core import progress

    monkeypatch.setenv("FTPIPE_PROGRESS", "lines")
    monkeypatch.setenv("FTPIPE_PROGRESS_SECONDS", "0")
    callback, state = progress.trainer_callback(), SimpleNamespace(max_steps=10, global_step=4)
    callback.on_train_begin(None, state, None)
    for step in range(5, 11):
        state.global_step = step
        callback.on_step_end(None, state, None)
        callback.on_log(None, state, None, logs={"loss": 1.0 / step})
    callback.on_train_end(None, state, None)
    lines = capsys.readouterr().err.splitlines()
    assert lines and lines[-1].startswith("train: 10/10 steps (100%)") and "loss=0.1" in lines[-1], lines


def test_expected_warnings_are_silenced_and_unexpected_ones_show():
    out = python("""
        from ftpipe.core import offline  # noqa: F401
        import logging, warnings
        warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device pinned memory won't be used.")
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("something nobody expected")
        logging.getLogger("DeepSpeed").warning("Setting accelerator to CPU. If you have GPU ...")
    """).stderr
    assert "pin_memory" not in out and "is_gradient_checkpointing" not in out and "Setting accelerator" not in out, out
    assert "something nobody expected" in out


def test_load_report_of_a_fresh_head_is_silenced_but_a_missing_encoder_weight_is_not(tmp_path):
    from ftpipe.models.sources import build_tiny

    build_tiny({"model_type": "bert", "vocab_size": 200, "hidden_size": 16, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 16}, tmp_path / "base")
    load = f"""
        from ftpipe.core import offline  # noqa: F401
        from ftpipe.params import validate
        from ftpipe.models.loading import load_for_task, load_tokenizer
        from ftpipe.tasks import get_task
        task = get_task(validate({{"task": {{"name": "t", "type": "classification", "labels": ["a", "b", "c"]}}}}, ("task",)).task)
        base = "{tmp_path / 'base'}"
        load_for_task(task, base, load_tokenizer(base, task))
    """
    assert "LOAD REPORT" not in python(load).stderr
    # The same base without one of its encoder weights: a real problem, reported.
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "base/model.safetensors")
    del weights[next(k for k in weights if "encoder" in k)]
    save_file(weights, tmp_path / "base/model.safetensors", metadata={"format": "pt"})
    assert "LOAD REPORT" in python(load).stderr


@pytest.mark.parametrize("report, shown", [
    ("Key | Status\n---+---\nclassifier.bias | MISSING\nclassifier.weight | MISSING", False),
    ("Key | Status\n---+---\nscore.weight | MISSING\ncls.predictions.bias | UNEXPECTED", False),
    ("Key | Status\n---+---\nclassifier.bias | MISSING\nbert.encoder.layer.0.output.dense.weight | MISSING", True),
    ("Key | Status\n---+---\nclassifier.weight | MISMATCH", True),
])
def test_load_report_filter(report, shown):
    import logging

    from ftpipe.core.quiet import FreshHeadReport, expect_fresh_heads

    expect_fresh_heads(("classifier.", "score."))  # as loading a classification head does

    record = logging.LogRecord("transformers.modeling_utils", logging.WARNING, "", 0,
                               "\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: models/base\n" + report, None, None)
    assert FreshHeadReport().filter(record) is shown

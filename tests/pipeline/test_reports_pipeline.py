"""What a real run shows: `dvc exp show` narrow enough to read with accuracy and lr in view, plots that
render, and the summary's headline at the end of a run."""

from __future__ import annotations

import json
import re

import pytest

from conftest import exp_show, run


def test_exp_show_on_the_quickstart_fits_200_columns_with_accuracy_and_lr(tmp_path):
    """The quickstart's params and dependencies as committed, with its metrics file (no need to train for the layout)."""
    from conftest import make_repo

    repo = make_repo(tmp_path / "repo", "quickstart")
    (repo / "metrics").mkdir()
    (repo / "metrics/tuned.json").write_text(json.dumps({"accuracy": 0.735, "macro_f1": 0.7243430641785111}))
    run("git add -A && git commit -qm metrics", repo)
    lines = exp_show(repo)
    header = next(line for line in lines if "Experiment" in line)
    assert re.search(r"\baccuracy\b", header) and re.search(r"\btrain\.lr\b", header), "\n".join(lines)
    assert re.search(r"0\.735 .* 0\.0001 ", next(line for line in lines if "workspace" in line)), "\n".join(lines)


@pytest.mark.slow
def test_summarization_run_ends_with_its_headline(dialogsum_pipeline):
    out = run(["dvc", "repro"], dialogsum_pipeline).stdout
    assert re.search(r"^rougeL \(0-1\): base [\d.]+ -> tuned [\d.]+ \([+-][\d.e-]+ \[[+-][\d.e-]+, [+-][\d.e-]+\], p [=<] [\d.e-]+\)",
                     out, flags=re.M), out  # the delta with its bootstrap interval

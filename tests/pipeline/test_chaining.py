"""One run's tuned model feeds the next, fetched by git revision through DVC: a teacher for
distillation, and a base for a second fine-tuning (SQuAD first, then a user's own file)."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import BUILDS, run

pytestmark = pytest.mark.slow


def head(repo) -> str:
    return run("git rev-parse HEAD", repo).stdout.strip()


def test_tuned_tiny_teacher_teaches_a_smaller_student_by_revision(tiny_pipeline):
    repo = tiny_pipeline  # reproduced and committed: its tuned model is the teacher, by revision
    rev = head(repo)
    teacher = json.loads((repo / "metrics/tuned.json").read_text())
    base = json.loads((repo / "metrics/base.json").read_text())

    out = run(["dvc", "exp", "run", "-S", "method=distill", "-S", f"method.teacher.revision={rev}", "-S", "train.lr=3e-3"], repo)
    assert "Running stage 'train'" in out.stdout and "Running stage 'download_model'" not in out.stdout
    info = json.loads((repo / "models/tuned/ftpipe_train.json").read_text())
    config = json.loads((repo / "models/tuned/config.json").read_text())
    assert (info["method"]["name"], info["method"]["type"]) == ("distill", "distill") and config["num_hidden_layers"] == 1
    student = json.loads((repo / "metrics/tuned.json").read_text())
    assert student["accuracy"] > base["accuracy"] + 0.1, (base, student, teacher)
    # The speed report sets the student beside its base and its teacher, on accuracy and on speed.
    report = (repo / "reports/speed.md").read_text()
    assert f"{rev}) | {teacher['accuracy']:.4g} | " in report and "| tuned (student, " in report, report
    # The teacher is a versioned dependency: its revision is a param DVC tracks.
    assert rev in (repo / "params.yaml").read_text()



def test_qa_model_tuned_in_one_run_is_the_base_of_the_next(qa_pipeline):
    repo, own_file = qa_pipeline, list(BUILDS["test_tiny_qa"])  # the first run: reproduced and committed
    rev = head(repo)
    first = json.loads((repo / "metrics/tuned.json").read_text())

    # Second run: the same small own file, starting from the first run's tuned model. DVC recomposes
    # params.yaml from conf/ and the -S overrides alone, so the own-file overrides are given again.
    run(["dvc", "exp", "run", *(arg for o in own_file for arg in ("-S", o)), "-S", "model=ftpipe_run", "-S", f"model.revision={rev}", "-S", "train.epochs=1"], repo)
    source = json.loads((repo / "models/base/ftpipe_source.json").read_text())
    assert source["source"] == "dvc" and source["revision"] == rev and source["tuned_from"]["name"] == "tiny_bert"
    base = json.loads((repo / "metrics/base.json").read_text())
    # The base of the second run already answers like the first run's tuned model.
    assert base["f1"] == pytest.approx(first["f1"], abs=1e-6), (base, first)


def test_ladder_tunes_each_methods_rate_as_experiments_and_tabulates_them(tiny_pipeline):
    """The ladder with --tune on the tiny model: full and LoRA at two rates each, four experiments of one epoch.
    Each method's row is its run with the lower recorded validation loss (models/tuned/ftpipe_train.json, never
    the evaluation set), with its interval and whether it differs from the best. (Each method's wiring, the
    teacher of distill and a method without a rate among them: tests/unit/test_methods.py.)"""
    repo = tiny_pipeline
    run(["python", "-m", "ftpipe.tools.ladder", "--methods", "full,lora", "--tune", "--grid", "0.5,2", "-S", "train.epochs=1"], repo)
    names = set(run(["dvc", "exp", "list", "--name-only"], repo).stdout.split())
    assert {"ladder-full-lr0.001", "ladder-full-lr0.004", "ladder-lora-lr0.001", "ladder-lora-lr0.004"} <= names, names
    rows = list(csv.DictReader((repo / "reports/methods.csv").open()))
    assert [r["method"] for r in rows] == ["base model", "full", "lora"]
    by = {r["method"]: r for r in rows}
    for method in ("full", "lora"):
        r = by[method]
        grid = dict(point.split(":") for point in r["lr_grid"].split())
        assert set(grid) == {"0.001", "0.004"}, r
        chosen = f"{float(r['lr']):g}"
        assert r["experiment"] == f"ladder-{method}-lr{chosen}" and float(grid[chosen]) == min(map(float, grid.values())), r
        assert r["validation_metric"] == "eval_loss" and float(r["validation_value"]) == pytest.approx(float(grid[chosen]), abs=1e-4)
    assert int(by["lora"]["trainable_params"]) < int(by["full"]["trainable_params"])
    assert float(by["full"]["value"]) > float(by["base model"]["value"])
    assert all(float(r["eval_samples_per_s"]) > 0 for r in rows)
    assert "| lr grid (validation) |" in (repo / "reports/methods.md").read_text()
    # Each method's interval (from its compare) and whether it differs from the best (Holm-corrected).
    low, high = float(by["full"]["ci95_low"]), float(by["full"]["ci95_high"])
    assert low <= float(by["full"]["value"]) <= high and 0 < float(by["full"]["p_vs_base"]) <= 1
    # One run per method: the top one is "top", never "best" (that takes a test over seeds: --seeds K).
    assert [r["vs_best"].startswith("top (one seed") for r in rows[1:]].count(True) == 1 and not by["base model"]["vs_best"]
    assert all(r["vs_best"].startswith(("top", "differs", "within noise")) for r in rows[1:])

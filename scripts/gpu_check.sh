#!/usr/bin/env bash
# The prepared GPU check (issue 33; docs/gpu-check.md): what ftpipe does on a bare, air-gapped GPU
# machine, in one run of under 8 minutes, measured into one JSON and one log.
#
#   scripts/gpu_check.sh --fetch       here, with PyPI: fill .gpu-carry/ with what that machine lacks
#   scripts/gpu_check.sh --dry-run     here, on a CPU: check .gpu-carry/ (fetched if absent), then compose,
#                                      validate and print every step's commands, running none of them
#   scripts/gpu_check.sh --rehearse    here, on a CPU: every step for real but shrunk, on this venv's packages
#   scripts/gpu_check.sh               on the GPU machine, .gpu-carry carried: install what it lacks, run
#                                      every step; JSON and log to --out (default $OUT, which comes back)
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${GPU_CHECK_CARRY:-.gpu-carry}
PYTHON=${PYTHON:-python3}  # on the GPU machine, the python3 that holds its torch
mode=check out=${OUT:-.scratch/gpu-check} budget=450  # 7.5 min for install and steps: the machine gives about 8

while [ $# -gt 0 ]; do
    case $1 in
        --fetch) mode=fetch ;;
        --dry-run) mode=dry-run ;;
        --rehearse) mode=rehearse budget=1800 ;;  # a CPU is slower, even at the shrunk sizes
        --out) out=${2:?--out needs a folder}; shift ;;
        --budget) budget=${2:?--budget needs seconds}; shift ;;
        *) echo "usage: scripts/gpu_check.sh [--fetch | --dry-run | --rehearse] [--out DIR] [--budget SECONDS]" >&2; exit 2 ;;
    esac
    shift
done

case $mode in
    fetch) exec "$PYTHON" scripts/gpu_check.py fetch "$CARRY" ;;
    dry-run | rehearse)
        [ -f "$CARRY/manifest.json" ] || "$PYTHON" scripts/gpu_check.py fetch "$CARRY"
        "$PYTHON" scripts/gpu_check.py verify "$CARRY" ;;
esac
# On the GPU machine the runner's first act is to look for the carry: without it, one line and a non-zero exit,
# before any install or GPU work.
exec "$PYTHON" scripts/gpu_check.py run --mode "$mode" --carry "$CARRY" --out "$out" --budget "$budget"

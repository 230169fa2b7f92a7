#!/usr/bin/env bash
# Run ftpipe on a machine without internet: inputs come from the DVC remote, results go back to it.
#
#   scripts/remote_run.sh [dvc exp run args]      e.g. scripts/remote_run.sh -S train.lr=2e-5
#   NPROC_PER_NODE=4 DISTRIBUTED=fsdp scripts/remote_run.sh ...   all 4 GPUs of the runner (README "Scale out")
#
# Needs: a clone of the repo with its git remote (GIT_REMOTE, default origin) and the DVC remote
# reachable (credentials from the environment, e.g. AWS_* for S3). Review the results elsewhere with
#   dvc exp pull origin <name>  &&  dvc exp show  &&  dvc metrics diff
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
GIT_REMOTE="${GIT_REMOTE:-origin}"

# The downloads (dataset and base model) were pushed from a connected machine; pull what else is cached.
dvc pull --allow-missing
LAUNCH=()  # a multi-GPU runner: torchrun with one process per GPU, and a strategy from conf/distributed
[ -z "${NPROC_PER_NODE:-}" ] || LAUNCH+=(-S train.launcher=torchrun -S "train.nproc_per_node=$NPROC_PER_NODE")
[ -z "${DISTRIBUTED:-}" ] || LAUNCH+=(-S "distributed=$DISTRIBUTED")
dvc exp run ${LAUNCH[@]+"${LAUNCH[@]}"} "$@"
# The experiment's git ref to the git remote, its outputs to the DVC remote (not the workspace).
dvc exp push "$GIT_REMOTE" --rev HEAD

#!/usr/bin/env bash
# The `run` of deploy/skypilot/*.yaml, started by SkyPilot on every node in that node's copy of the repo,
# with SKYPILOT_NUM_NODES, SKYPILOT_NODE_RANK, SKYPILOT_NODE_IPS (one per line, node 0 first) and
# SKYPILOT_NUM_GPUS_PER_NODE set.
#   FTPIPE_OVERRIDES  `dvc exp run -S` overrides, one per line; each line is one argument, never read by a
#                     shell, so a value may hold spaces, quotes or $(...)
#   DISTRIBUTED       a conf/distributed strategy (fsdp, deepspeed_zero3, ...); unset: the Trainer's DDP
# One node: scripts/remote_run.sh with one process per GPU. Several: node 0 runs scripts/remote_run.sh
# (DVC, the one writer); every other node pulls the inputs, composes the same params and runs the train
# stage's command with its own rank, as scripts/slurm/train.sbatch does (both use scripts/multinode.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
die() { echo "error: $*" >&2; exit 1; }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

ARGS=()
while IFS= read -r line; do [ -z "$line" ] || ARGS+=(-S "$line"); done <<< "${FTPIPE_OVERRIDES:-}"
[ -z "${DISTRIBUTED:-}" ] || ARGS+=(-S "distributed=$DISTRIBUTED")
unset DISTRIBUTED NPROC_PER_NODE  # in ARGS now, or below: remote_run.sh must not add them again
NODES=${SKYPILOT_NUM_NODES:-1}
GPUS=${SKYPILOT_NUM_GPUS_PER_NODE:-0}
[[ $GPUS =~ ^[1-9][0-9]*$ ]] ||
    die "SKYPILOT_NUM_GPUS_PER_NODE=$GPUS: no GPU on this node: set resources.accelerators (sky launch --gpus L4:1 ...)"

if [ "$NODES" = 1 ]; then
    [ "$GPUS" = 1 ] || export NPROC_PER_NODE=$GPUS  # torchrun, one process per GPU
    exec bash scripts/remote_run.sh ${ARGS[@]+"${ARGS[@]}"}
fi
# Several nodes meet at node 0's address: without it, or without this node's rank, they would wait for
# each other until torchrun's rendezvous times out.
IPS=()
while IFS= read -r line; do [ -z "$line" ] || IPS+=("$line"); done <<< "${SKYPILOT_NODE_IPS:-}"
[ "${#IPS[@]}" = "$NODES" ] ||
    die "SKYPILOT_NUM_NODES=$NODES but SKYPILOT_NODE_IPS holds ${#IPS[@]} address(es), so the nodes cannot meet: set it to one IP per node, node 0 first (SkyPilot sets it on every node of a num_nodes task)"
{ [[ ${SKYPILOT_NODE_RANK:-} =~ ^[0-9]+$ ]] && [ "$SKYPILOT_NODE_RANK" -lt "$NODES" ]; } ||
    die "SKYPILOT_NODE_RANK='${SKYPILOT_NODE_RANK:-}': set it to this node's rank, 0 to $((NODES - 1)) (SkyPilot sets it on every node)"
. scripts/multinode.sh
multinode_set "$NODES" "$GPUS" "${IPS[0]}" "${MASTER_PORT:-29500}" ${ARGS[@]+"${ARGS[@]}"}
[ "$SKYPILOT_NODE_RANK" != 0 ] || exec bash scripts/remote_run.sh "${SET[@]}"

# Every other node: the inputs and the params node 0's `dvc exp run` composes, then its train command.
# It writes nothing back: node 0's global rank 0 is the one writer.
bash scripts/remote_run.sh --pull-only
python -m ftpipe.params "${OVERRIDES[@]}"
dvc repro subset
mapfile -t CMDS < <(multinode_commands)
read -ra CMD <<< "${CMDS[$SKYPILOT_NODE_RANK]}"
exec "${CMD[@]}"

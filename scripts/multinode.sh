# shellcheck shell=bash
# Several nodes, one train stage: sourced by scripts/slurm/train.sbatch and scripts/skypilot/run.sh, so
# that Slurm and SkyPilot build the same overrides and the same per-node train commands (a test compares
# them). Node 0 runs DVC and is the only writer; every other node runs the train stage's command with its
# own --node_rank, and all meet at node 0's address (torchrun's static rendezvous).

# multinode_set NNODES GPUS_PER_NODE NODE0_HOST PORT [dvc exp run args...]
# Sets SET (node 0's `dvc exp run` args) and OVERRIDES (the same without -S, for python -m ftpipe.params).
multinode_set() {
    local nnodes=$1 gpus=$2 host=$3 port=$4 arg
    shift 4
    SET=(-S train.launcher=torchrun -S "train.nnodes=$nnodes" -S "train.nproc_per_node=$gpus"
         -S "train.rdzv_endpoint=$host:$port" "$@")
    OVERRIDES=()
    for arg in "${SET[@]}"; do [[ $arg == -S || $arg == --set-param ]] || OVERRIDES+=("$arg"); done
}

# multinode_commands: one train command per node on stdout, line N+1 for node N: the stage's cmd after
# `python`, under the launch prefix of that node's rank, from the params.yaml composed with OVERRIDES.
# Every token is a checked value without spaces (ftpipe.core.launch), so a line splits safely into words.
multinode_commands() {
    python - <<'PY'
import yaml
from ftpipe.core.launch import launch_prefix
t = yaml.safe_load(open("params.yaml"))["train"]
rest = yaml.safe_load(open("dvc.yaml"))["stages"]["train"]["cmd"].split(" ", 1)[1]  # after `python`
for rank in range(t["nnodes"]):
    print(launch_prefix(t["launcher"], t["nproc_per_node"], t["nnodes"], rank, t["rdzv_endpoint"]), rest)
PY
}

#!/usr/bin/env bash
# Run ftpipe on a machine without internet: inputs come from the DVC remote, results go back to it.
#
#   scripts/remote_run.sh [dvc exp run args]      e.g. scripts/remote_run.sh -S train.lr=2e-5
#   NPROC_PER_NODE=4 DISTRIBUTED=fsdp scripts/remote_run.sh ...   all 4 GPUs of the runner (README "Scale out")
#   scripts/remote_run.sh --pull-only             the checks and the inputs only (a node that joins node 0's run)
#
# Needs: a clone of the repo with its git remote (GIT_REMOTE, default origin) and the DVC remote
# reachable (credentials from the environment, e.g. AWS_* for S3). Review the results elsewhere with
#   dvc exp pull origin <name>  &&  dvc exp show  &&  dvc metrics diff
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
GIT_REMOTE="${GIT_REMOTE:-origin}"
die() { echo "error: $*" >&2; exit 1; }
hide() { sed -E 's#://[^/@]*@#://***@#' <<< "$1"; }  # a URL as an error line may show it: no user:token@
# GIT_TOKEN (e.g. `sky launch --secret GIT_TOKEN`): git and DVC ask scripts/git_askpass.sh for it when an
# HTTPS git remote wants a password, so the token lives only in the environment, never in .git/config.
if [ -n "${GIT_TOKEN:-}" ]; then GIT_ASKPASS="$(cd "$(dirname "$0")" && pwd)/git_askpass.sh"; export GIT_ASKPASS; fi

# Bad settings fail here, in seconds, each with one line naming what to set, not after the pipeline has
# run for an hour on a GPU and `dvc exp push` finds nowhere to push.
git_url=$(git remote get-url "$GIT_REMOTE" 2>/dev/null) ||
    die "no git remote '$GIT_REMOTE' in this clone, so the experiment could not be pushed: set GIT_REMOTE to one of \`git remote\`, or add it (git remote add origin <url>)"
# GIT_TERMINAL_PROMPT=0: a remote asking for a password fails at once instead of waiting for a keyboard.
GIT_TERMINAL_PROMPT=0 timeout 60 git ls-remote "$GIT_REMOTE" HEAD >/dev/null 2>&1 ||
    die "git remote '$GIT_REMOTE' ($(hide "$git_url")) is unreachable or refuses this machine: set GIT_TOKEN for an HTTPS remote (or give the runner an SSH key), or set GIT_REMOTE to one it can push to"
dvc_remote=$(dvc remote default 2>/dev/null) ||
    die "no default DVC remote, so the inputs cannot be pulled: dvc remote add --local -d store s3://bucket/ftpipe (or gs://, ssh://, a shared folder)"
dvc_url=$(dvc config "remote.$dvc_remote.url")
case "$dvc_url" in  # what DVC needs for the remote: its plugin, and the credentials it reads
    s3://*) plugin=s3 creds="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE" ;;
    gs://*) plugin=gs creds="GOOGLE_APPLICATION_CREDENTIALS" ;;
    azure://*) plugin=azure creds="AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY" ;;
    ssh://*) plugin=ssh creds="an SSH key for it (dvc remote modify --local $dvc_remote keyfile <path>)" ;;
    http://* | https://*) plugin=http creds="dvc remote modify --local $dvc_remote auth basic, and its user and password" ;;
    *) plugin="" creds="a path this machine can read (dvc remote modify --local $dvc_remote url <path>)" ;;
esac
[ -z "$plugin" ] || python -c "import dvc_$plugin" 2>/dev/null ||
    die "DVC remote '$dvc_remote' ($(hide "$dvc_url")) needs dvc-$plugin on this machine: DVC_PLUGINS=dvc-$plugin bash scripts/setup.sh (or pip install dvc-$plugin)"
if [ -n "${FTPIPE_CHECKPOINTS:-}" ]; then
    { mkdir -p -- "$FTPIPE_CHECKPOINTS" 2>/dev/null && [ -w "$FTPIPE_CHECKPOINTS" ]; } ||
        die "FTPIPE_CHECKPOINTS=$FTPIPE_CHECKPOINTS is not a writable folder: point it at one (a bucket mount, a shared disk), or unset it"
fi

# The downloads (dataset and base model) were pushed from a connected machine and must come from the
# remote: DVC reports a remote that refuses its credentials as files missing there, which
# --allow-missing would pass over in silence. Then whatever else is cached.
if ! dvc pull download_data download_model; then
    die "dvc pull from DVC remote '$dvc_remote' ($(hide "$dvc_url")) failed (DVC's message above): its credentials: $creds; or the inputs are not there: push them from a connected machine (dvc repro download_data download_model && dvc push download_data download_model)"
fi
dvc pull --allow-missing
[ "${1:-}" != --pull-only ] || exit 0
LAUNCH=()  # a multi-GPU runner: torchrun with one process per GPU, and a strategy from conf/distributed
[ -z "${NPROC_PER_NODE:-}" ] || LAUNCH+=(-S train.launcher=torchrun -S "train.nproc_per_node=$NPROC_PER_NODE")
[ -z "${DISTRIBUTED:-}" ] || LAUNCH+=(-S "distributed=$DISTRIBUTED")
dvc exp run ${LAUNCH[@]+"${LAUNCH[@]}"} "$@"
# The experiment's git ref to the git remote, its outputs to the DVC remote (not the workspace).
dvc exp push "$GIT_REMOTE" --rev HEAD

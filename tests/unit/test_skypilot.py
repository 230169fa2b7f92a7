"""The SkyPilot task files (deploy/skypilot/): SkyPilot's own parser reads each of them, and on 2 nodes x 4
GPUs their `run`, as SkyPilot renders it for each node, gives the same `dvc exp run` on node 0 and the
same train command on node 1 as scripts/slurm/train.sbatch does under the matching Slurm variables.

SkyPilot lives in .venv-sky (scripts/setup.sh), apart from the pinned .venv: it pins click<8.2. It runs
there in a subprocess, offline: Task.from_yaml and the run script's rendering need no cloud account.
dvc and torchrun are stubs that record their arguments; python, git and `dvc remote`/`dvc config` are real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_repo, run

pytestmark = pytest.mark.xdist_group("skypilot")  # one worker parses the files once
SKY_PYTHON = REPO / ".venv-sky" / "bin" / "python"
TASKS = sorted((REPO / "deploy" / "skypilot").glob("*.yaml"))
# A value no shell may ever run: the override reaches Hydra as one argument, as written.
HOSTILE = "+train.extra.run_name='a b $(touch pwned); `touch pwned2`'"
OVERRIDES = ["train.epochs=2", HOSTILE]
TWO_NODES = {"SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2", "SKYPILOT_NUM_GPUS_PER_NODE": "4"}
# The spot file's required settings, as `sky jobs launch --env ...` gives them.
SPOT_ENVS = {"FTPIPE_GIT_URL": "https://example.com/ftpipe.git", "FTPIPE_GIT_REF": "main",
             "CHECKPOINT_BUCKET": "s3://bucket/ftpipe-checkpoints"}

# Runs in .venv-sky: each file as `sky launch --env` parses it, and its run script as SkyPilot writes it for
# each node (log_lib.make_task_bash_script: `cd ~/sky_workdir`, then the task's envs and SKYPILOT_* exported).
SKY_SCRIPT = r"""
import json, sys, yaml
import sky
from sky.skylet import log_lib
request = json.load(sys.stdin)
out = {"version": sky.__version__, "tasks": {}}
for path in request["paths"]:
    entry = {}
    try:
        sky.Task.from_yaml(path)
    except ValueError as err:
        entry["bare_error"] = str(err)
    config = yaml.safe_load(open(path))
    task = sky.Task.from_yaml_config(config, env_overrides=list(request["envs"].items()))
    (resources,) = task.resources
    entry.update(name=task.name, num_nodes=task.num_nodes, setup=task.setup, run=task.run, envs=task.envs,
                 accelerators=resources.accelerators, use_spot=resources.use_spot,
                 secrets=sorted(ref.name for ref in task.managed_secret_refs), inline_secrets=sorted(task.secrets),
                 mounts={dst: [str(s.source), s.mode.value] for dst, s in task.storage_mounts.items()},
                 scripts={rank: log_lib.make_task_bash_script(task.run, env_vars={**task.envs, **node})
                          for rank, node in request["nodes"].items()})
    out["tasks"][path] = entry
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sky_tasks(tmp_path_factory):
    if not SKY_PYTHON.exists():
        pytest.fail(f"{SKY_PYTHON} is missing: run bash scripts/setup.sh (it installs SkyPilot there)")
    nodes = {"single": {"SKYPILOT_NODE_RANK": "0", "SKYPILOT_NUM_NODES": "1", "SKYPILOT_NODE_IPS": "10.0.0.1",
                        "SKYPILOT_NUM_GPUS_PER_NODE": "4"},
             **{str(rank): {**TWO_NODES, "SKYPILOT_NODE_RANK": str(rank)} for rank in (0, 1)}}
    request = {"paths": [str(p) for p in TASKS], "nodes": nodes,
               "envs": {**SPOT_ENVS, "FTPIPE_OVERRIDES": "\n".join(OVERRIDES)}}
    home = tmp_path_factory.mktemp("sky-home")  # SkyPilot writes ~/.sky on import
    out = subprocess.run([str(SKY_PYTHON), "-c", SKY_SCRIPT], input=json.dumps(request), capture_output=True,
                         text=True, env={"PATH": os.environ["PATH"], "HOME": str(home)}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    return result["version"], {Path(p).name: t for p, t in result["tasks"].items()}


def test_every_task_file_parses_with_skypilot_and_holds_no_credential(sky_tasks):
    version, tasks = sky_tasks
    assert version.startswith("0.14."), version
    assert set(tasks) == {"train.yaml", "train-multinode.yaml", "train-spot.yaml"}
    for name, task in tasks.items():
        assert task["accelerators"], name  # a GPU per node, replaced by --gpus
        assert "bash scripts/setup.sh" in task["setup"] and "torch.cuda.is_available()" in task["setup"], name
        assert "bash scripts/skypilot/run.sh" in task["run"], name
        # Credentials are names whose values come from --secret at launch; none is written in a file.
        assert task["inline_secrets"] == [] and {"GIT_TOKEN", "AWS_ACCESS_KEY_ID"} <= set(task["secrets"]), name
        raw = yaml.safe_load((REPO / "deploy" / "skypilot" / name).read_text())
        assert all(value is None for value in raw["secrets"].values()), name
    assert tasks["train.yaml"]["num_nodes"] == 1 and "bare_error" not in tasks["train.yaml"]
    assert tasks["train-multinode.yaml"]["num_nodes"] == 2
    spot = tasks["train-spot.yaml"]
    assert spot["use_spot"] and spot["run"] == tasks["train.yaml"]["run"]
    # The checkpoints go to the bucket mount, and launching without the bucket or the repo stops at once.
    assert spot["mounts"] == {spot["envs"]["FTPIPE_CHECKPOINTS"]: [SPOT_ENVS["CHECKPOINT_BUCKET"], "MOUNT"]}
    assert "FTPIPE_GIT_URL" in spot["bare_error"]


def node_env(tmp_path: Path) -> tuple[dict, Path]:
    """PATH with dvc and torchrun stubs that append their arguments to a log (remote and config run the real
    dvc, for remote_run.sh's checks), and the test's Python; a fake .venv whose activate puts them first."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    real_dvc = Path(sys.executable).parent / "dvc"
    for name in ("dvc", "torchrun"):
        (stubs / name).write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            f"if {name!r} == 'dvc' and sys.argv[1:2] in (['remote'], ['config']):\n"
            f"    os.execv({str(real_dvc)!r}, [{str(real_dvc)!r}, *sys.argv[1:]])\n"
            "node = os.environ.get('SKYPILOT_NODE_RANK', os.environ.get('SLURM_NODEID', '0'))\n"
            f"with open(os.environ['STUB_LOG'], 'a') as fh: fh.write(json.dumps([node, {name!r}, *sys.argv[1:]]) + '\\n')\n")
        (stubs / name).chmod(0o755)
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text(f'export PATH="{stubs}:{Path(sys.executable).parent}:$PATH"\n')
    log = tmp_path / "calls.jsonl"
    return {**os.environ, "STUB_LOG": str(log)}, log


def calls(log: Path) -> list[list[str]]:
    found = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return found


@pytest.fixture(scope="module")
def runner_repo(tmp_path_factory):
    """A clone of the project with a git remote and its .dvc/config remote (../ftpipe-remote) in place."""
    base = tmp_path_factory.mktemp("sky")
    repo = make_repo(base / "repo")
    run(["git", "init", "-q", "--bare", str(base / "origin.git")], base)
    run(["git", "remote", "add", "origin", str(base / "origin.git")], repo)
    (base / "ftpipe-remote").mkdir()
    return repo


def run_sky_node(script: str, repo: Path, env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """A node's rendered run script, in a HOME whose ~/sky_workdir is the repository, as on the cluster."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if not (home / "sky_workdir").exists():
        (home / "sky_workdir").symlink_to(repo)
    return subprocess.run(["bash", "-c", script], cwd=home, env={**env, "HOME": str(home)}, capture_output=True,
                          text=True, timeout=300)


def test_two_nodes_run_the_same_commands_as_the_slurm_script(sky_tasks, runner_repo, tmp_path):
    _, tasks = sky_tasks
    env, log = node_env(tmp_path)
    (runner_repo / ".venv").mkdir(exist_ok=True)
    (runner_repo / ".venv" / "bin").mkdir(exist_ok=True)
    (runner_repo / ".venv" / "bin" / "activate").write_text((tmp_path / "venv/bin/activate").read_text())

    # Slurm: node 0 and node 1 from scripts/slurm/train.sbatch, srun and scontrol faked on this machine.
    (tmp_path / "stubs" / "srun").write_text(
        "#!/usr/bin/env bash\nwhile [[ $1 == --* ]]; do shift; done\n"
        'for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i "$@" || exit 1; done\n')
    (tmp_path / "stubs" / "scontrol").write_text("#!/usr/bin/env bash\nprintf '10.0.0.1\\n10.0.0.2\\n'\n")
    for name in ("srun", "scontrol"):
        (tmp_path / "stubs" / name).chmod(0o755)
    slurm_env = {**env, "PATH": f"{tmp_path / 'stubs'}:{env['PATH']}", "VENV": str(tmp_path / "venv"),
                 "SLURM_SUBMIT_DIR": str(runner_repo), "SLURM_JOB_ID": "7", "SLURM_NNODES": "2",
                 "SLURM_JOB_NODELIST": "node[0-1]", "SLURM_GPUS_ON_NODE": "4"}
    args = [a for o in OVERRIDES for a in ("-S", o)]
    out = subprocess.run(["bash", str(REPO / "scripts/slurm/train.sbatch"), *args], cwd=runner_repo, env=slurm_env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    slurm = calls(log)
    slurm_params = yaml.safe_load((runner_repo / "params.yaml").read_text())

    # SkyPilot: each node's run script of train-multinode.yaml, as SkyPilot renders it.
    sky = []
    for rank in ("0", "1"):
        out = run_sky_node(tasks["train-multinode.yaml"]["scripts"][rank], runner_repo, env, tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        sky += calls(log)
    sky_params = yaml.safe_load((runner_repo / "params.yaml").read_text())

    def launched(found, node, program, first):
        return [c[2:] for c in found if c[0] == node and c[1] == program and c[2] == first]

    expected_torchrun = ["--nnodes=2", "--nproc_per_node=4", "--node_rank=1", "--rdzv_backend=static",
                         "--rdzv_endpoint=10.0.0.1:29500", "stages/train.py"]
    assert launched(slurm, "1", "torchrun", "--nnodes=2") == launched(sky, "1", "torchrun", "--nnodes=2")
    assert launched(sky, "1", "torchrun", "--nnodes=2")[0][:6] == expected_torchrun
    node0 = launched(sky, "0", "dvc", "exp")
    assert launched(slurm, "0", "dvc", "exp") == node0
    assert node0[0][:2] == ["exp", "run"] and node0[0][-4:] == ["-S", OVERRIDES[0], "-S", HOSTILE]
    assert "train.rdzv_endpoint=10.0.0.1:29500" in node0[0] and "train.nproc_per_node=4" in node0[0]
    assert ["exp", "push", "origin", "--rev", "HEAD"] in launched(sky, "0", "dvc", "exp")  # node 0 alone pushes
    assert not launched(sky, "1", "dvc", "exp")
    # Node 1's train stage reads the params node 0's `dvc exp run` composes: the same on both paths.
    assert slurm_params == sky_params and sky_params["train"]["node_rank"] == 0
    assert sky_params["train"]["extra"]["run_name"] == "a b $(touch pwned); `touch pwned2`"
    assert not list(runner_repo.rglob("pwned*")) and not list(tmp_path.rglob("pwned*"))


def test_one_node_trains_on_every_gpu_with_the_overrides_as_arguments(sky_tasks, runner_repo, tmp_path):
    _, tasks = sky_tasks
    env, log = node_env(tmp_path)
    (runner_repo / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    (runner_repo / ".venv" / "bin" / "activate").write_text((tmp_path / "venv/bin/activate").read_text())
    out = run_sky_node(tasks["train.yaml"]["scripts"]["single"], runner_repo, env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    exp_runs = [c[2:] for c in calls(log) if c[1:4] == ["dvc", "exp", "run"]]
    assert exp_runs == [["exp", "run", "-S", "train.launcher=torchrun", "-S", "train.nproc_per_node=4",
                         "-S", OVERRIDES[0], "-S", HOSTILE]]
    assert not list(tmp_path.rglob("pwned*")) and not list(runner_repo.rglob("pwned*"))


@pytest.mark.parametrize("unset, expected", [
    ("SKYPILOT_NODE_IPS", "SKYPILOT_NUM_NODES=2 but SKYPILOT_NODE_IPS holds 0 address(es)"),
    ("SKYPILOT_NODE_RANK", "SKYPILOT_NODE_RANK='': set it to this node's rank, 0 to 1"),
    ("SKYPILOT_NUM_GPUS_PER_NODE", "no GPU on this node: set resources.accelerators"),
])
def test_a_multi_node_run_without_its_rendezvous_settings_stops_with_one_line(unset, expected, tmp_path):
    """Before any pull or install: a node that cannot find node 0 would otherwise wait for the rendezvous."""
    env, log = node_env(tmp_path)
    env = {**env, "PATH": f"{tmp_path / 'stubs'}:{env['PATH']}", **TWO_NODES, "SKYPILOT_NODE_RANK": "1"}
    del env[unset]
    out = subprocess.run(["bash", str(REPO / "scripts/skypilot/run.sh")], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], out.stderr
    assert calls(log) == []  # nothing pulled, nothing launched

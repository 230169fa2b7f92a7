"""Scale out: the launcher prefix composed from params, the strategies (conf/distributed) as valid
TrainingArguments, combinations refused at load, and real multi-process runs on CPU with gloo."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO
from ftpipe.params import compose, validate
from ftpipe.core.launch import launch_prefix
from ftpipe.core.errors import ConfigError

STRATEGIES = sorted(p.stem for p in (REPO / "conf" / "distributed").glob("*.yaml"))
SECTIONS = ("task", "model", "method", "train")


@pytest.fixture
def at_repo(monkeypatch):
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("launcher, nproc, nnodes, rank, endpoint, expected", [
    ("none", 1, 1, 0, None, "python"),
    ("torchrun", 2, 1, 0, None, "torchrun --standalone --nproc_per_node=2"),
    ("torchrun", 8, 2, 1, "node0:29500",
     "torchrun --nnodes=2 --nproc_per_node=8 --node_rank=1 --rdzv_backend=static --rdzv_endpoint=node0:29500"),
    ("accelerate", 1, 1, 0, None, "accelerate launch --num_processes=1 --num_machines=1 --mixed_precision=no --dynamo_backend=no"),
    ("accelerate", 4, 1, 0, None, "accelerate launch --num_processes=4 --num_machines=1 --mixed_precision=no "
                                  "--dynamo_backend=no --multi_gpu --main_process_port=0"),
    ("accelerate", 4, 2, 0, "10.0.0.1:29500", "accelerate launch --num_processes=8 --num_machines=2 --mixed_precision=no "
     "--dynamo_backend=no --multi_gpu --machine_rank=0 --main_process_ip=10.0.0.1 --main_process_port=29500 --rdzv_backend=static"),
])
def test_launch_prefix_per_launcher(launcher, nproc, nnodes, rank, endpoint, expected):
    assert launch_prefix(launcher, nproc, nnodes, rank, endpoint) == expected


def test_composition_and_dvc_yaml_build_the_train_command_from_params(at_repo):
    """`-S train.launcher=torchrun -S train.nproc_per_node=2` is all DVC needs: conf/ composes the prefix
    into params, where `train` (all of it) is a tracked param; the stage's cmd holds no params value (the
    stage starts the launcher itself), so nothing in params.yaml can reach DVC's shell."""
    train = compose(["train.launcher=torchrun", "train.nproc_per_node=2"])["train"]
    assert train["launch_prefix"] == "torchrun --standalone --nproc_per_node=2"
    assert compose()["train"]["launch_prefix"] == "python"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages["train"]["cmd"].startswith("python stages/train.py ") and "train" in stages["train"]["params"]
    for name, stage in stages.items():  # evaluate's `${item}` (tuned, base) is dvc.yaml's own list
        cmd = stage.get("do", stage)["cmd"]
        assert set(re.findall(r"\$\{[^}]*\}", cmd)) <= {"${item}"}, (name, cmd)


@pytest.mark.parametrize("overrides, message", [
    (["train.launcher=mpirun"], "train.launcher: unknown launcher 'mpirun'"),
    (["train.nproc_per_node=2"], "train.launcher: none runs one process"),
    (["train.launcher=torchrun", "train.nnodes=2"], "train.rdzv_endpoint: host:port of node 0 is required"),
    (["train.launcher=torchrun", "train.nnodes=2", "train.node_rank=2", "train.rdzv_endpoint=n0:29500"], "train.node_rank"),
    (["train.launcher=torchrun", "train.nproc_per_node=0"], "train.nproc_per_node: must be >= 1"),
])
def test_bad_launch_settings_fail_composition_with_one_line(at_repo, overrides, message):
    with pytest.raises(Exception) as err:
        compose(overrides)
    assert message in str(err.value).splitlines()[0]


@pytest.mark.parametrize("edit, message", [
    ({"backend": "tcp"}, "train.backend: unknown backend 'tcp'"),
    ({"launcher": "torchrun", "nproc_per_node": 2}, "train.launch_prefix: 'python' does not match"),  # edited, not recomposed
    ({"distributed": {"strategy": "fsdp"}}, "train.distributed.strategy: fsdp needs processes started by torchrun"),
    ({"distributed": {"strategy": "zero"}}, "train.distributed.strategy: unknown strategy 'zero'"),
    ({"distributed": {"strategy": "deepspeed", "zero_stage": 4}, "launcher": "torchrun",
      "launch_prefix": "torchrun --standalone --nproc_per_node=1"}, "train.distributed.zero_stage"),
])
def test_bad_params_are_one_clear_error(composed, edit, message):
    params = yaml.safe_load(yaml.safe_dump(composed))
    params["train"].update(edit)
    with pytest.raises(ConfigError) as err:
        validate(params, SECTIONS)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_yields_valid_training_arguments(at_repo, tmp_path, strategy):
    if strategy.startswith("deepspeed"):
        pytest.importorskip("deepspeed")
    from ftpipe.training.arguments import training_arguments

    params = compose([f"distributed={strategy}", "train.launcher=torchrun", "train.nproc_per_node=2"])
    cfg = validate(params, SECTIONS).train
    args = training_arguments(cfg, tmp_path)  # TrainingArguments validates the combination itself
    assert args.average_tokens_across_devices is False
    if strategy == "fsdp":
        assert args.fsdp and args.fsdp_plugin_args["fsdp_version"] == 2
        assert args.fsdp_plugin_args["state_dict_type"] == "FULL_STATE_DICT"
    elif strategy.startswith("deepspeed"):
        ds = args.hf_deepspeed_config.config  # the Trainer has filled in every "auto" it owns
        assert ds["zero_optimization"]["stage"] == cfg.distributed.zero_stage
        assert ds["train_micro_batch_size_per_gpu"] == cfg.batch_size
        assert ds["gradient_accumulation_steps"] == cfg.grad_accum
        assert ("offload_param" in ds["zero_optimization"]) == strategy.endswith("offload")
    else:
        assert not args.fsdp and args.deepspeed is None
        if strategy == "ddp":
            assert args.ddp_find_unused_parameters is False


def test_deepspeed_json_is_generated_with_auto_and_merged_overrides():
    from ftpipe.core.config import DistributedConfig
    from ftpipe.training.arguments import deepspeed_config

    pytest.importorskip("deepspeed")  # DistributedConfig refuses deepspeed where it is not installed
    ds = deepspeed_config(DistributedConfig(strategy="deepspeed", zero_stage=3, offload=True,
                                            deepspeed={"zero_optimization": {"overlap_comm": False}, "steps_per_print": 50}))
    zero = ds["zero_optimization"]
    assert ds["train_batch_size"] == ds["gradient_clipping"] == ds["bf16"]["enabled"] == "auto"
    assert zero["offload_param"]["device"] == zero["offload_optimizer"]["device"] == "cpu"
    assert ds["optimizer"]["params"]["lr"] == "auto"  # offload needs DeepSpeed's CPU Adam, tuned by train.lr
    assert zero["overlap_comm"] is False and zero["contiguous_gradients"] is True and ds["steps_per_print"] == 50


@pytest.mark.parametrize("strategy, refused", [("ddp", False), ("deepspeed_zero2", False), ("fsdp", True),
                                               ("deepspeed_zero3", True), ("deepspeed_zero3_offload", True)])
def test_qlora_under_sharding_is_refused_at_load(at_repo, strategy, refused):
    if strategy.startswith("deepspeed"):
        pytest.importorskip("deepspeed")
    params = compose(["method=qlora", f"distributed={strategy}", "train.launcher=torchrun", "train.nproc_per_node=2"])
    if not refused:
        validate(params, SECTIONS)
        return
    with pytest.raises(ConfigError, match=r"train.distributed: method 'qlora' \(a 4-bit base\) cannot run under"):
        validate(params, SECTIONS)
    validate(compose(["method=lora", f"distributed={strategy}", "train.launcher=torchrun"]), SECTIONS)  # LoRA is fine


def test_effective_batch_counts_every_process_and_accumulation_step():
    from ftpipe.training.arguments import effective_batch

    args = SimpleNamespace(per_device_train_batch_size=8, world_size=2, gradient_accumulation_steps=4)
    assert effective_batch(args) == 64


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_the_train_stages_flags_reach_the_script_through_each_launcher(launcher):
    """relaunch puts the stage's own argv after the launcher's: a stage flag that abbreviates a launcher option
    (`--run` and torchrun's `--run-path`) was taken by the launcher, which then refused the command."""
    import shlex

    script, *flags = shlex.split(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["cmd"])[1:]
    launcher_args = launch_prefix(launcher, 2, 1, 0, None).split()[1:]
    if launcher == "torchrun":
        from torch.distributed.run import get_args_parser

        parsed = get_args_parser().parse_args([*launcher_args, script, *flags])
    else:
        from accelerate.commands.launch import launch_command_parser

        parsed = launch_command_parser().parse_args([*launcher_args[1:], script, *flags])  # after `launch`
    assert (parsed.training_script, parsed.training_script_args) == (script, flags)

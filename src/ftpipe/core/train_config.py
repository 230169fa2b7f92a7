"""The train section's schema: TrainConfig and its distributed settings, checked against the launcher and
against transformers' own names (scheduler, optimizer, train.extra). Imported through ftpipe.core.config."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Optional

from ftpipe.core.errors import check, shown
from ftpipe.core.launch import BACKENDS, STRATEGIES, launch_prefix

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # what `auto` means: ftpipe/precision.py


@dataclass
class DistributedConfig:
    """How the launched processes share the model: conf/distributed/*.yaml (README "Scale out").

    none: the Trainer's default (DDP when launched with several processes). ddp: DDP with its
    settings. fsdp: `fsdp_config` for the Trainer (FSDP2). deepspeed: a DeepSpeed JSON generated
    from zero_stage and offload, "auto" where the Trainer fills it in (ftpipe.training.arguments.deepspeed_config).
    """

    strategy: str = "none"  # none | ddp | fsdp | deepspeed
    find_unused_parameters: Optional[bool] = None  # DDP; null: the Trainer's choice
    fsdp: dict[str, Any] = field(default_factory=dict)  # TrainingArguments.fsdp_config
    zero_stage: int = 0  # DeepSpeed ZeRO stage: 2 shards optimizer states and gradients, 3 the parameters too
    offload: bool = False  # DeepSpeed: optimizer states (and, at stage 3, parameters) in CPU memory
    deepspeed: dict[str, Any] = field(default_factory=dict)  # merged over the generated DeepSpeed JSON

    def __post_init__(self):
        check("train.distributed.strategy", self.strategy in STRATEGIES, f"unknown strategy '{self.strategy}' ({', '.join(STRATEGIES)})")
        if self.strategy == "deepspeed":
            check("train.distributed.zero_stage", self.zero_stage in (1, 2, 3), f"1, 2 or 3 for deepspeed, got {self.zero_stage}")
            check("train.distributed.strategy", importlib.util.find_spec("deepspeed") is not None,
                   "deepspeed is not installed: pip install -e '.[deepspeed]' (on the GPU machine)")


# TrainingArguments that ftpipe.training.arguments.training_arguments sets from a named param: train.extra may not
# set them too, or the run would train with one value while params.yaml and the card show another.
SET_BY = {
    "learning_rate": "train.lr", "num_train_epochs": "train.epochs", "max_steps": "train.max_steps",
    "per_device_train_batch_size": "train.batch_size", "gradient_accumulation_steps": "train.grad_accum",
    "weight_decay": "train.weight_decay", "warmup_steps": "train.warmup", "lr_scheduler_type": "train.scheduler",
    "seed": "train.seed", "data_seed": "train.seed", "full_determinism": "train.full_determinism",
    "train_sampling_strategy": "train.group_by_length", "logging_steps": "train.logging_steps",
    "save_strategy": "train.save_steps", "save_steps": "train.save_steps", "eval_strategy": "train.eval_steps",
    "eval_steps": "train.eval_steps", "load_best_model_at_end": "train.validation_fraction",
    "metric_for_best_model": "train.best_metric", "greater_is_better": "train.best_metric",
    "label_smoothing_factor": "train.label_smoothing", "max_grad_norm": "train.max_grad_norm",
    "bf16": "train.precision", "fp16": "train.precision", "activation_checkpointing": "train.gradient_checkpointing",
    "torch_compile": "train.torch_compile", "report_to": "train.report_to", "optim": "train.optim",
    "ddp_backend": "train.backend", "ddp_find_unused_parameters": "train.distributed.find_unused_parameters",
    "fsdp": "train.distributed.strategy", "fsdp_config": "train.distributed.fsdp", "deepspeed": "train.distributed.deepspeed",
}


@dataclass
class TrainConfig:
    lr: float = 5e-5
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup: float = 0.0  # fraction of the steps (transformers' warmup_steps accepts a float < 1)
    scheduler: str = "linear"
    seed: int = 42
    group_by_length: bool = True  # batches of similar length: less padding
    # Batches of at most this many tokens, padding included (ftpipe.trainer.TokenBudgetSampler); null: batch_size rows.
    batch_tokens: Optional[int] = None
    # Causal-LM tasks: each batch flattened into one row, no padding, attention kept within each
    # example (position_ids restart per example); ftpipe.packing. Checked at load and before training.
    packing: bool = False
    logging_steps: int = 10
    save_steps: int = 0  # checkpoint every N steps for resume (0 = never)
    full_determinism: bool = False
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: see ftpipe/precision.py)
    gradient_checkpointing: bool = False
    optim: Optional[str] = None  # null: the transformers default (fused AdamW where torch has it)
    torch_compile: bool = False
    label_smoothing: float = 0.0  # classification targets (1 - e) on the label, e spread over the classes
    max_grad_norm: Optional[float] = 1.0  # gradient clipping (the Trainer's default); null: no clipping
    # Validation: a seeded fraction of the training subset (stratified by label, whole questions for
    # QA), never the evaluation set; evaluated every eval_steps (0: every epoch).
    validation_fraction: float = 0.0
    eval_steps: int = 0
    best_metric: str = "eval_loss"  # the validation metric the best checkpoint and early stopping follow
    early_stopping_patience: int = 0  # evaluations without improvement before stopping (0: off)
    # Scale out (README "Scale out"): who starts the processes, how many, where, and how they share the model.
    launcher: str = "none"  # none | torchrun | accelerate
    nproc_per_node: int = 1  # processes per node: one per GPU
    nnodes: int = 1
    node_rank: int = 0  # this node's rank; node 0 hosts global rank 0, the process that writes
    rdzv_endpoint: Optional[str] = None  # host:port of node 0, required when nnodes > 1
    backend: str = "auto"  # torch.distributed backend; auto: nccl on GPUs, gloo on CPUs
    launch_prefix: str = "python"  # composed from the keys above (launch_prefix()); never set by hand
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    # Experiment trackers: dvclive (always on) plus any of transformers' (wandb, mlflow, tensorboard, ...);
    # their credentials come from the environment only (ftpipe/tracking.py).
    report_to: list[str] = field(default_factory=lambda: ["dvclive"])
    extra: dict[str, Any] = field(default_factory=dict)  # passed to TrainingArguments as is

    def __post_init__(self):
        check("train.lr", self.lr > 0, f"must be > 0, got {self.lr}")
        check("train.batch_size", self.batch_size >= 1, f"must be >= 1, got {self.batch_size}")
        check("train.batch_tokens", self.batch_tokens is None or self.batch_tokens >= 1, f"must be >= 1 or null, got {self.batch_tokens}")
        check("train.batch_tokens", not (self.batch_tokens and self.packing), "token-budget batches pad; packing flattens: pick one")
        check("train.grad_accum", self.grad_accum >= 1, f"must be >= 1, got {self.grad_accum}")
        check("train.epochs", self.epochs > 0 or self.max_steps > 0, "epochs or max_steps must be > 0")
        check("train.warmup", 0 <= self.warmup < 1 or float(self.warmup).is_integer(), "a fraction in [0, 1) or a whole number of steps")
        check("train.precision", self.precision in PRECISIONS, "auto, fp32, bf16 or fp16")
        check("train.save_steps", self.save_steps >= 0, f"must be >= 0 (0: no checkpoints), got {self.save_steps}")
        check("train.logging_steps", self.logging_steps >= 1, f"must be >= 1, got {self.logging_steps}")
        check("train.validation_fraction", 0 <= self.validation_fraction < 1, "a fraction in [0, 1)")
        # The Trainer evaluates the validation split for its loss only (the task's metrics are the evaluate
        # stage's): any other name was a KeyError after the first whole epoch.
        check("train.best_metric", self.best_metric in ("eval_loss", "loss"),
              f"the validation split reports its loss only: eval_loss, got {shown(self.best_metric)}")
        check("train.eval_steps", self.eval_steps >= 0, "must be >= 0 (0: every epoch)")
        check("train.early_stopping_patience", self.early_stopping_patience >= 0, f"must be >= 0 (0: off), got {self.early_stopping_patience}")
        check("train.early_stopping_patience", self.early_stopping_patience == 0 or self.validation_fraction > 0,
               "early stopping needs a validation split (train.validation_fraction > 0)")
        check("train.eval_steps", not (self.validation_fraction and self.save_steps and self.eval_steps
                                        and self.save_steps % self.eval_steps), "save_steps must be a multiple of eval_steps")
        check("train.label_smoothing", 0 <= self.label_smoothing < 1, "a fraction in [0, 1)")
        check("train.weight_decay", self.weight_decay >= 0, f"must be >= 0, got {self.weight_decay}")
        check("train.max_grad_norm", self.max_grad_norm is None or self.max_grad_norm > 0,
              f"must be > 0, got {self.max_grad_norm} (null disables clipping)")
        check("train.seed", 0 <= self.seed < 2**32, f"must be in 0..2**32-1 (numpy's seed range), got {self.seed}")
        for key in self.extra:
            check(f"train.extra.{key}", key not in SET_BY, f"set by {SET_BY.get(key)}; use that")
        if self.scheduler != "linear" or self.optim or self.extra:  # importing transformers takes seconds: only then
            _check_trainer_names(self)
        check("train.backend", self.backend in BACKENDS, f"unknown backend '{self.backend}' ({', '.join(BACKENDS)})")
        composed = launch_prefix(self.launcher, self.nproc_per_node, self.nnodes, self.node_rank, self.rdzv_endpoint)
        # A params.yaml edited by hand without recomposing would launch one way and claim another.
        check("train.launch_prefix", self.launch_prefix == composed,
               f"'{self.launch_prefix}' does not match the launcher settings ('{composed}'): run `python -m ftpipe.params`")
        check("train.distributed.strategy", self.distributed.strategy == "none" or self.launcher != "none",
               f"{self.distributed.strategy} needs processes started by torchrun or accelerate: set train.launcher (even for one GPU)")


def _check_trainer_names(cfg: TrainConfig) -> None:
    """scheduler, optim and extra against transformers' own lists: a typo is one line at load, not a
    TrainingArguments traceback once the train stage has loaded the model."""
    import dataclasses
    import difflib

    from transformers import TrainingArguments
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    schedulers = [s.value for s in SchedulerType]
    check("train.scheduler", cfg.scheduler in schedulers, f"unknown scheduler '{cfg.scheduler}' ({', '.join(schedulers)})")
    optimizers = [o.value for o in OptimizerNames]
    check("train.optim", cfg.optim is None or cfg.optim in optimizers, f"unknown optimizer '{cfg.optim}' ({', '.join(optimizers)})")
    fields = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    for key in cfg.extra:
        close = difflib.get_close_matches(key, fields, n=3)
        check(f"train.extra.{key}", key in fields, "not a TrainingArguments argument"
               + (f" (did you mean {', '.join(close)}?)" if close else " (see transformers' TrainingArguments)"))

"""The Trainer's settings from params: TrainingArguments, when to evaluate and checkpoint, the backend
and strategy (DDP, FSDP, the DeepSpeed JSON), and the effective batch they make."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import TrainingArguments

from ftpipe.precision import resolve as resolve_precision
from ftpipe.tracking import report_to

log = logging.getLogger(__name__)


def training_arguments(cfg, output_dir: Path, processes: int = 1):
    """TrainingArguments for a run of `processes` processes (the launch's world size, from the process state).

    Each argument set here from a param is in ftpipe.core.config.SET_BY, which keeps train.extra off it."""
    precision = resolve_precision(cfg.precision)
    kwargs = dict(
        output_dir=str(output_dir),
        learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup,
        lr_scheduler_type=cfg.scheduler,
        seed=cfg.seed,
        data_seed=cfg.seed,
        full_determinism=cfg.full_determinism,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        logging_steps=cfg.logging_steps,
        **checkpointing(cfg),
        label_smoothing_factor=cfg.label_smoothing,
        max_grad_norm=0.0 if cfg.max_grad_norm is None else cfg.max_grad_norm,  # the Trainer clips only when > 0
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        # Without CUDA, use_cpu is what makes accelerate join torchrun's processes (gloo) rather than
        # run each alone; bf16 on a CPU needs it too.
        use_cpu=not torch.cuda.is_available() and (precision != "fp32" or processes > 1),
        activation_checkpointing=cfg.gradient_checkpointing,  # v5's name for gradient checkpointing
        torch_compile=cfg.torch_compile,
        report_to=report_to(cfg, output_dir),  # DVCLive is ftpipe.training.resume.LiveLogger; these are the others
        disable_tqdm=True,
    )
    kwargs.update(strategy_kwargs(cfg))
    if cfg.optim:
        kwargs["optim"] = cfg.optim
    kwargs.update(cfg.extra)
    return TrainingArguments(**kwargs)


def strategy_kwargs(cfg) -> dict:
    """TrainingArguments for the backend and the strategy (conf/distributed): DDP, FSDP or DeepSpeed."""
    dist = cfg.distributed
    # average_tokens_across_devices multiplies each process's loss by the number of processes, which
    # is right only for models that divide by the global count they are passed (causal LMs); the
    # classification and QA heads take a plain mean, so their loss and gradients came out N times
    # too large. Off, every model gets DDP's mean of the processes' means.
    out = {"ddp_backend": None if cfg.backend == "auto" else cfg.backend, "average_tokens_across_devices": False}
    if dist.strategy == "ddp":
        out["ddp_find_unused_parameters"] = dist.find_unused_parameters
    elif dist.strategy == "fsdp":
        fsdp = dict(dist.fsdp)
        if cfg.gradient_checkpointing:  # FSDP's own: the Trainer's would all-gather once more in backward
            fsdp["activation_checkpointing"], out["activation_checkpointing"] = True, False
        out.update(fsdp=True, fsdp_config=fsdp)
        if not torch.cuda.is_available():  # accelerate switches to FSDP only from a multi-GPU state
            log.warning("distributed=fsdp needs GPUs: on CPUs accelerate runs these processes as plain DDP")
    elif dist.strategy == "deepspeed":
        out["deepspeed"] = deepspeed_config(dist)
    return out


def deepspeed_config(dist) -> dict:
    """The DeepSpeed JSON for a ZeRO stage, generated from params.

    "auto" wherever the Trainer fills in its own value (batch sizes, accumulation, clipping,
    precision, optimizer hyperparameters), so train.* stays the one place they are set.
    `distributed.deepspeed` is merged over the result.
    """
    zero = {"stage": dist.zero_stage, "overlap_comm": True, "contiguous_gradients": True, "reduce_bucket_size": "auto"}
    if dist.zero_stage == 3:
        zero.update(stage3_prefetch_bucket_size="auto", stage3_param_persistence_threshold="auto",
                    stage3_gather_16bit_weights_on_model_save=True)  # models/tuned is one ordinary checkpoint
    config = {"train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto", "gradient_accumulation_steps": "auto",
              "gradient_clipping": "auto", "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
              "zero_optimization": zero}
    if dist.offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if dist.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
        # Optimizer states in CPU memory need DeepSpeed's CPU Adam; the Trainer's torch optimizer is refused.
        config["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}}
    return _merged(config, dist.deepspeed)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def effective_batch(args) -> int:
    """Examples per optimizer step (per device x processes x accumulation), logged once by the main process."""
    n = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    log.info("effective batch %d = %d per device x %d processes x %d accumulation steps", n,
             args.per_device_train_batch_size, args.world_size, args.gradient_accumulation_steps)
    return n


def checkpointing(cfg) -> dict:
    """When to evaluate on the validation split and when to checkpoint.

    With validation, checkpoints follow evaluations (the Trainer keeps the best one and the last,
    and loads the best at the end); `save_steps` alone checkpoints for resume only.
    """
    validating = cfg.validation_fraction > 0
    every = cfg.eval_steps or cfg.save_steps  # steps between evaluations (0: once per epoch)
    if not validating:
        return {"save_strategy": "steps" if cfg.save_steps else "no", "save_steps": cfg.save_steps or 500, "save_total_limit": 2}
    strategy = "steps" if every else "epoch"
    return {"eval_strategy": strategy, "save_strategy": strategy, "eval_steps": every or None, "save_steps": every or 500,
            "save_total_limit": 2, "load_best_model_at_end": True, "metric_for_best_model": cfg.best_metric,
            "greater_is_better": not cfg.best_metric.endswith("loss")}

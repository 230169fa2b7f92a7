"""`train`: fine-tune the base model on the training subset with transformers' Trainer."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ftpipe.io import atomic_output
from ftpipe.methods import build_model, log_trainable
from ftpipe.models import load_tokenizer

log = logging.getLogger(__name__)


def training_arguments(cfg, output_dir: Path):
    from transformers import TrainingArguments

    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
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
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=2,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing,
        torch_compile=cfg.torch_compile,
        report_to="none",  # DVCLive is added as a callback, with its own directory
        disable_tqdm=True,
    )
    if cfg.optim:
        kwargs["optim"] = cfg.optim
    kwargs.update(cfg.extra)
    return TrainingArguments(**kwargs)


def train(params, data_dir: Path, base_dir: Path, out_dir: Path, live_dir: Path, checkpoint_dir: Path) -> dict:
    import datasets
    from dvclive import Live
    from dvclive.huggingface import DVCLiveCallback
    from transformers import Trainer, set_seed

    from ftpipe.tasks import get_task

    task = get_task(params.task)
    set_seed(params.train.seed)
    tokenizer = load_tokenizer(base_dir, task)
    model = build_model(task, base_dir, tokenizer, params.model, params.method)
    train_set = datasets.load_from_disk(str(Path(data_dir) / "train"))

    live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    trainer = Trainer(
        model=model,
        args=training_arguments(params.train, checkpoint_dir),
        train_dataset=train_set,
        data_collator=task.collator(tokenizer),
        processing_class=tokenizer,
        callbacks=[DVCLiveCallback(live=live)],
    )
    result = trainer.train()
    live.end()

    summary = {**log_trainable(model), **result.metrics, "base_model": str(base_dir), "method": params.method.name}
    with atomic_output(out_dir) as tmp:
        trainer.save_model(str(tmp))  # a PEFT model saves only its adapter
        tokenizer.save_pretrained(str(tmp))
        (tmp / "ftpipe_train.json").write_text(json.dumps(summary, indent=2))
    log.info("tuned model in %s", out_dir)
    return summary

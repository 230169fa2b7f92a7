"""`train`: fine-tune the base model on the training subset with transformers' Trainer."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler

from ftpipe.io import atomic_output
from ftpipe.methods import build_model, log_trainable
from ftpipe.models import load_tokenizer
from ftpipe.precision import resolve as resolve_precision

log = logging.getLogger(__name__)


def training_arguments(cfg, output_dir: Path):
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
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=2,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=precision != "fp32" and not torch.cuda.is_available(),  # else bf16 on CPU is refused
        activation_checkpointing=cfg.gradient_checkpointing,  # v5's name for gradient checkpointing
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

    from ftpipe.tasks import get_task

    task = get_task(params.task)
    fingerprint = run_fingerprint(params, data_dir, base_dir)
    resume_from = find_checkpoint(Path(checkpoint_dir), fingerprint)
    set_seed(params.train.seed)  # before the model: its fresh head is drawn from this seed
    tokenizer = load_tokenizer(base_dir, task)
    model = build_model(task, base_dir, tokenizer, params.model, params.method)
    train_set = datasets.load_from_disk(str(Path(data_dir) / "train"))

    # DVCLive writes beside the checkpoints and is copied into place at the end (atomic, like every
    # output); each checkpoint carries a copy of it, so a resumed run continues the same history.
    staging = Path(checkpoint_dir) / "live"
    shutil.rmtree(staging, ignore_errors=True)
    if resume_from:
        shutil.copytree(resume_from / "live", staging)
    live = Live(str(staging), resume=bool(resume_from), save_dvc_exp=False, dvcyaml=None, report=None)
    trainer = ResumableTrainer(
        model=model,
        args=training_arguments(params.train, checkpoint_dir),
        train_dataset=train_set,
        data_collator=task.collator(tokenizer),
        processing_class=tokenizer,
        callbacks=[LiveLogger(live, staging)],
    )
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    live.end()

    summary = {**log_trainable(model), **result.metrics, "base_model": str(base_dir), "method": params.method.name,
               "precision": resolve_precision(params.train.precision),  # what `auto` meant on this machine
               "run": run_info(fingerprint, resume_from)}
    with atomic_output(out_dir) as tmp:
        trainer.save_model(str(tmp))  # a PEFT model saves only its adapter
        tokenizer.save_pretrained(str(tmp))
        (tmp / "ftpipe_train.json").write_text(json.dumps(summary, indent=2))
    with atomic_output(live_dir) as tmp:
        shutil.copytree(staging, tmp)
    clear_checkpoints(Path(checkpoint_dir))
    log.info("tuned model in %s", out_dir)
    return summary


# --- resume -------------------------------------------------------------------------------------
# Checkpoints live in a folder DVC never deletes. Beside them, fingerprint.json holds a hash of
# everything the run depends on (the params sections train reads, the training data, the base
# model), so checkpoints left by a run with other params or data are discarded, not resumed.
FINGERPRINT = "fingerprint.json"
COMPLETE = "ftpipe_complete"  # written into a checkpoint after the Trainer has saved all of it


def run_fingerprint(params, data_dir: Path, base_dir: Path) -> str:
    sections = {name: dataclasses.asdict(getattr(params, name)) for name in ("task", "model", "method", "train")}
    digest = hashlib.sha256(json.dumps(sections, sort_keys=True, default=str).encode())
    for root in (Path(data_dir) / "train", Path(base_dir)):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            size = path.stat().st_size
            digest.update(f"{path.relative_to(root)} {size}".encode())
            # Reading gigabytes of base weights on every start would be slow; the base model is
            # already pinned by params.model, so large files count by name and size.
            if size <= 64 << 20:
                digest.update(path.read_bytes())
    return digest.hexdigest()


def find_checkpoint(checkpoint_dir: Path, fingerprint: str) -> Path | None:
    """The latest complete checkpoint of a run with this fingerprint; stale checkpoints are removed."""
    stamp = checkpoint_dir / FINGERPRINT
    if stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
        done = [p for p in checkpoint_dir.glob("checkpoint-*") if (p / COMPLETE).exists()]
        if done:
            latest = max(done, key=lambda p: int(p.name.split("-")[1]))
            log.info("resuming from %s (step %s)", latest, latest.name.split("-")[1])
            return latest
    elif checkpoint_dir.exists() and any(checkpoint_dir.iterdir()):
        log.info("ignoring checkpoints in %s: they are from other params or data", checkpoint_dir)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True)
    stamp.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    return None


def clear_checkpoints(checkpoint_dir: Path) -> None:
    """After success only the fingerprint stays: a forced rerun starts over, it does not resume."""
    for path in checkpoint_dir.iterdir():
        if path.name != FINGERPRINT:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class LiveLogger(TrainerCallback):
    """Trainer logs into DVCLive at the Trainer's global step; a copy of the log goes into each checkpoint."""

    # Timings differ run to run; they stay in ftpipe_train.json, out of the metrics `dvc metrics diff` compares.
    NOISY = ("_runtime", "_per_second", "total_flos")

    def __init__(self, live, live_dir: Path):
        self.live, self.live_dir = live, live_dir

    def on_log(self, args, state, control, logs=None, **kwargs):
        from dvclive.utils import standardize_metric_name

        self.live.step = state.global_step
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and not key.endswith(self.NOISY):
                self.live.log_metric(standardize_metric_name(key, "dvclive.huggingface"), value)
        self.live.next_step()

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        shutil.copytree(self.live_dir, checkpoint / "live", dirs_exist_ok=True)
        (checkpoint / COMPLETE).write_text("")


class EpochSeededSampler(torch.utils.data.Sampler):
    """Draws each epoch's order from (seed, epoch) alone.

    transformers' LengthGroupedSampler draws from the global RNG at the start of an epoch; a run
    resumed mid-epoch has a different global RNG there, so it would see the batches in another order.
    """

    def __init__(self, sampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int) -> None:  # accelerate calls this at every epoch start
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        self.sampler.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(self.sampler)


class ResumableTrainer(Trainer):
    """A Trainer whose length-grouped batches come in the same order after a resume."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            return EpochSeededSampler(sampler, self.args.data_seed or self.args.seed)
        return sampler  # RandomSampler: accelerate already seeds it per epoch


# --- provenance ---------------------------------------------------------------------------------
def run_info(fingerprint: str, resumed_from: Path | None) -> dict:
    """Library versions and git/DVC state, recorded in the tuned model's ftpipe_train.json."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("ftpipe", "torch", "transformers", "datasets", "peft", "accelerate", "dvc", "dvclive", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "versions": versions,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        # Set by `dvc exp run`; absent under `dvc repro`. Only these names are read: never the whole environment.
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME"),
        "dvc_exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV"),
        "fingerprint": fingerprint,
        "resumed_from_step": int(resumed_from.name.split("-")[1]) if resumed_from else None,
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None

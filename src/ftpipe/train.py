"""`train`: the rank-aware runner. It resumes, sets up logging, and hands the model to the method's fit.

The method plug-in (ftpipe.methods) builds, fits and saves; the runner owns everything that writes:
checkpoints' bookkeeping, DVCLive, provenance and the atomic move of the tuned model into place,
all on the main process only, so the stage can run under a multi-process launcher.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dvclive import Live
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler

from ftpipe.io import atomic_output
from ftpipe.methods.base import count_trainable
from ftpipe.models.loading import base_identity, load_tokenizer
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


@dataclass
class Run:
    """What a method's fit sees of the run: the process it is in, the data, the Trainer's settings.

    Rank-aware: every process builds the same model and sees the same data in the same order (the
    Trainer's seeded, distributed sampler); only the main process writes outputs, DVCLive and the
    checkpoints' bookkeeping. Launched alone, it is the main process of a world of one.
    """

    state: Any  # accelerate.PartialState: rank, local rank, world size
    args: TrainingArguments
    train_set: Any
    collator: Any
    tokenizer: Any
    callbacks: list
    resume_from: Path | None
    trainer: Trainer | None = None

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    @property
    def local_rank(self) -> int:
        return self.state.local_process_index

    def make_trainer(self, model) -> Trainer:
        self.trainer = ResumableTrainer(model=model, args=self.args, train_dataset=self.train_set, data_collator=self.collator,
                                        processing_class=self.tokenizer, callbacks=self.callbacks)
        return self.trainer


def train(params, data_dir: Path, base_dir: Path, out_dir: Path, live_dir: Path, checkpoint_dir: Path) -> dict:
    import datasets
    from accelerate import PartialState

    from ftpipe.methods import RECORD, get_method
    from ftpipe.tasks import get_task

    state = PartialState()  # reads the launcher's environment (RANK, LOCAL_RANK, ...); one process if none
    task, method = get_task(params.task), get_method(params.method)
    checkpoint_dir = Path(checkpoint_dir)
    fingerprint = run_fingerprint(params, data_dir, base_dir)
    with state.main_process_first():  # the main process discards stale checkpoints before anyone looks
        resume_from = find_checkpoint(checkpoint_dir, fingerprint, cleanup=state.is_main_process)
    set_seed(params.train.seed)  # before the model: its fresh head is drawn from this seed
    tokenizer = load_tokenizer(base_dir, task, trust_remote_code=params.model.trust_remote_code)

    # DVCLive writes beside the checkpoints and is copied into place at the end (atomic, like every
    # output); each checkpoint carries a copy of it, so a resumed run continues the same history.
    staging, live, callbacks = checkpoint_dir / "live", None, []
    if state.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        if resume_from:
            shutil.copytree(resume_from / "live", staging)
        live = Live(str(staging), resume=bool(resume_from), save_dvc_exp=False, dvcyaml=None, report=None)
        callbacks.append(LiveLogger(live, staging))
    run = Run(state, training_arguments(params.train, checkpoint_dir), datasets.load_from_disk(str(Path(data_dir) / "train")),
              task.collator(tokenizer), tokenizer, callbacks, resume_from)
    model = method.build(task, base_dir, tokenizer, params.model, run)
    trainable = count_trainable(model)
    metrics = method.fit(model, run)

    # Every process takes part in saving (a sharded model is gathered first); the main one writes.
    final = checkpoint_dir / "final"
    if state.is_main_process:
        shutil.rmtree(final, ignore_errors=True)  # left by a run that died while saving
    state.wait_for_everyone()
    method.save(model, tokenizer, final, run)
    summary = {}
    if state.is_main_process:
        live.end()
        summary = {**trainable, **metrics,
                   "method": {"name": params.method.name, "type": params.method.type},
                   "base_model": base_identity(base_dir),  # where the base came from, not models/base
                   "precision": resolve_precision(params.train.precision),  # what `auto` meant on this machine
                   "processes": state.num_processes,
                   "run": run_info(fingerprint, resume_from)}
        tokenizer.save_pretrained(str(final))
        (final / RECORD).write_text(json.dumps(summary, indent=2))
        with atomic_output(out_dir) as tmp:
            shutil.move(str(final), str(tmp))
        with atomic_output(live_dir) as tmp:
            shutil.copytree(staging, tmp)
        clear_checkpoints(checkpoint_dir)
        log.info("tuned model in %s", out_dir)
    state.wait_for_everyone()
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


def find_checkpoint(checkpoint_dir: Path, fingerprint: str, cleanup: bool = True) -> Path | None:
    """The latest complete checkpoint of a run with this fingerprint.

    With `cleanup` (the main process only), stale checkpoints are removed and the fingerprint written.
    """
    stamp = checkpoint_dir / FINGERPRINT
    same_run = stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint
    if same_run:
        done = [p for p in checkpoint_dir.glob("checkpoint-*") if (p / COMPLETE).exists()]
        if done:
            latest = max(done, key=lambda p: int(p.name.split("-")[1]))
            log.info("resuming from %s (step %s)", latest, latest.name.split("-")[1])
            return latest
    if not cleanup:
        return None
    if not same_run and checkpoint_dir.exists() and any(checkpoint_dir.iterdir()):
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
DEFINES_RUN = ("src", "stages", "conf", "dvc.yaml", "params.yaml", "pyproject.toml")


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
        # Uncommitted changes to what defines the run; dvc.lock and outputs change as the pipeline runs.
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", *DEFINES_RUN)),
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

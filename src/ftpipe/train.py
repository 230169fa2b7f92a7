"""`train`: the rank-aware runner. It resumes, sets up logging, and hands the model to the method's fit.

The method plug-in (ftpipe.methods) builds, fits and saves; the runner owns everything that writes:
checkpoints' bookkeeping, DVCLive, provenance and the atomic move of the tuned model into place,
all on the main process only, so the stage can run under a multi-process launcher.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import pickle
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dvclive import Live
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

from ftpipe.errors import ConfigError, FtpipeError, shown
from ftpipe.io import atomic_output
from ftpipe.methods.base import count_trainable
from ftpipe.models.loading import base_identity, load_tokenizer
from ftpipe.precision import resolve as resolve_precision
from ftpipe.stage import peak_rss_mb
from ftpipe.trainer import ResumableTrainer
from ftpipe.tracking import report_to

log = logging.getLogger(__name__)


def training_arguments(cfg, output_dir: Path):
    # Each argument set here from a param is in ftpipe.config.SET_BY, which keeps train.extra off it.
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
        use_cpu=not torch.cuda.is_available() and (precision != "fp32" or int(os.environ.get("WORLD_SIZE", 1)) > 1),
        activation_checkpointing=cfg.gradient_checkpointing,  # v5's name for gradient checkpointing
        torch_compile=cfg.torch_compile,
        report_to=report_to(cfg, output_dir),  # DVCLive is LiveLogger below; these are the others (train.report_to)
        disable_tqdm=True,
    )
    kwargs.update(strategy_kwargs(cfg))
    if cfg.optim:
        kwargs["optim"] = cfg.optim
    kwargs.update(cfg.extra)
    return TrainingArguments(**kwargs)


def process_state(cfg):
    """This process's place in the launch (accelerate.PartialState), set up before anything asks.

    PartialState is shared by the whole process, so train()'s `PartialState()` and the Trainer see
    this one. Without it, on a machine with no CUDA, accelerate ignores torchrun's environment until
    TrainingArguments resets the state: until then every process believes it is the main one, and
    each would clear the checkpoints and open its own DVCLive history.
    """
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available(), backend=None if cfg.backend == "auto" else cfg.backend)
    if cfg.distributed.strategy == "deepspeed" and state.num_processes > 1:
        import deepspeed

        # ZeRO-3 builds the model already sharded (zero.Init), which needs DeepSpeed's own view of the
        # processes; accelerate sets that up on GPUs only, so CPU runs (tests, gloo) would see a world of one.
        deepspeed.init_distributed(dist_backend=state.backend, auto_mpi_discovery=False)
    return state


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
    eval_set: Any = None  # the validation split (None: no validation)
    trainer: Trainer | None = None

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    @property
    def local_rank(self) -> int:
        return self.state.local_process_index

    def make_trainer(self, model, trainer_class=None, **kwargs) -> Trainer:
        """The Trainer for this run; a method may pass its own subclass of ResumableTrainer and its arguments."""
        self.trainer = (trainer_class or ResumableTrainer)(
            model=model, args=self.args, train_dataset=self.train_set, eval_dataset=self.eval_set, data_collator=self.collator,
            processing_class=self.tokenizer, callbacks=self.callbacks, **kwargs)
        # With its bar off the Trainer prints every log as a raw dict; DVCLive and the progress line carry them.
        from transformers.trainer_callback import PrinterCallback

        self.trainer.remove_callback(PrinterCallback)
        return self.trainer


def train(params, data_dir: Path, base_dir: Path, out_dir: Path, live_dir: Path, checkpoint_dir: Path) -> dict:
    import datasets
    from accelerate import PartialState

    from ftpipe import guards, packing, progress
    from ftpipe.card import CARD_TRAIN_KEYS, write_card
    from ftpipe import records
    from ftpipe.methods import get_method
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
    staging, live, callbacks = checkpoint_dir / "live", None, guards.callbacks()  # first: see ftpipe/guards.py
    if state.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        if resume_from:
            shutil.copytree(resume_from / "live", staging)
        live = Live(str(staging), resume=bool(resume_from), save_dvc_exp=False, dvcyaml=None, report=None)
        callbacks.append(LiveLogger(live, staging))
        callbacks.append(progress.trainer_callback())  # a bar, or plain lines in a log (FTPIPE_PROGRESS)
    if params.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(params.train.early_stopping_patience))
    train_set, eval_set = split_validation(datasets.load_from_disk(str(Path(data_dir) / "train")),
                                           params.train.validation_fraction, params.train.seed, task)
    collator = packing.train_collator(task, tokenizer, params.train.packing)  # the task's, or flattened batches
    run = Run(state, training_arguments(params.train, checkpoint_dir), train_set, collator, tokenizer,
              callbacks, resume_from, eval_set)
    model = method.build(task, base_dir, tokenizer, params.model, run)
    if params.train.packing:  # a model whose attention would cross packed examples: one line, before training
        packing.check_model(model, collator)
    trainable = count_trainable(model)
    final = checkpoint_dir / "final"
    with checkpoint_io(checkpoint_dir, resume_from):
        metrics = method.fit(model, run)
        # Every process takes part in saving (a sharded model is gathered first); the main one writes.
        if state.is_main_process:
            shutil.rmtree(final, ignore_errors=True)  # left by a run that died while saving
        state.wait_for_everyone()
        method.save(model, tokenizer, final, run)
    summary = {}
    if state.is_main_process:
        live.end()
        summary = {**trainable, **metrics,
                   "method": dataclasses.asdict(params.method),  # name, type and settings: the card reads them here
                   "train": {k: getattr(params.train, k) for k in CARD_TRAIN_KEYS if hasattr(params.train, k)},
                   "base_model": base_identity(base_dir),  # where the base came from, not models/base
                   "precision": resolve_precision(params.train.precision),  # what `auto` meant on this machine
                   "processes": state.num_processes,
                   "peak_rss_mb": peak_rss_mb(),  # of the main process
                   "effective_batch": effective_batch(run.args),  # per device x processes x accumulation
                   **best_checkpoint(run),
                   "run": run_info(fingerprint, resume_from)}
        tokenizer.save_pretrained(str(final))
        records.TRAIN.write(final, summary)
        write_card(final, params, run)  # README.md: Hub metadata, what it is, how to load and reproduce it
        with atomic_output(out_dir) as tmp:
            shutil.move(str(final), str(tmp))
        with atomic_output(live_dir) as tmp:
            shutil.copytree(staging, tmp)
        clear_checkpoints(checkpoint_dir)
        log.info("tuned model in %s", out_dir)
    state.wait_for_everyone()
    return summary


def split_validation(dataset, fraction: float, seed: int, task):
    """(train, validation): a seeded `fraction` of the training subset held out, or (all, None).

    Whole examples go one way (the features of one task.group_column value stay together); a task
    with classes is stratified by its task.stratify_column where every class has at least two rows.
    """
    if not fraction:
        return dataset, None
    import numpy as np
    from sklearn.model_selection import train_test_split

    if task.group_column in dataset.column_names:
        groups = np.asarray(dataset[task.group_column])
        _, held = train_test_split(np.unique(groups), test_size=fraction, random_state=seed)
        is_val = np.isin(groups, held)
    else:
        labels = dataset[task.stratify_column] if task.stratify_column in dataset.column_names else None
        stratify = labels if labels is not None and not isinstance(labels[0], list) and min(np.bincount(labels)[np.unique(labels)]) >= 2 else None
        _, held = train_test_split(np.arange(len(dataset)), test_size=fraction, random_state=seed, stratify=stratify)
        is_val = np.isin(np.arange(len(dataset)), held)
    if is_val.all() or not is_val.any():
        raise ConfigError("train.validation_fraction", f"leaves no rows on one side of {len(dataset)} training rows")
    return dataset.select(np.flatnonzero(~is_val)), dataset.select(np.flatnonzero(is_val))


def best_checkpoint(run) -> dict:
    """Which validated step the tuned model is (load_best_model_at_end), and whether training stopped early."""
    state = run.trainer.state if run.trainer is not None else None
    if run.eval_set is None or state is None:
        return {}
    return {"best_step": state.best_global_step, "best_metric": {run.args.metric_for_best_model: state.best_metric},
            "stopped_early": state.global_step < state.max_steps}


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


@contextmanager
def checkpoint_io(checkpoint_dir: Path, resume_from: Path | None):
    """A checkpoint that cannot be read or written, as one line naming it and what to do, not a traceback
    from inside the Trainer.

    Reading, on resume: a damaged file, a pickle where safetensors should be, a pickle that is not plain
    tensors (weights_only refuses it: it could run code). Writing: a full disk, which safetensors
    ("os error 28") and torch's zip writer ("unexpected pos") report in their own words; the incomplete
    checkpoint has no completion mark, so the rerun resumes from the one before it.
    """
    from safetensors import SafetensorError

    try:
        yield
    except (pickle.UnpicklingError, RuntimeError, OSError, SafetensorError) as err:
        text = str(err)
        if getattr(err, "errno", None) == errno.ENOSPC or "os error 28" in text or "unexpected pos" in text:
            free = shutil.disk_usage(checkpoint_dir).free >> 20
            raise FtpipeError(f"{checkpoint_dir}: a checkpoint could not be written ({free} MiB left on its disk): free "
                              "space and rerun; it resumes from the last complete checkpoint") from None
        reading = isinstance(err, (pickle.UnpicklingError, SafetensorError)) or "PytorchStreamReader" in text
        if resume_from is None or not reading:
            raise  # not resuming, or not a file failing to load: a bug, with its traceback
        raise FtpipeError(f"{resume_from}: cannot resume from it: one of its files does not load ({type(err).__name__}: "
                          f"{shown(text, 60)}); discard it with `rm -r {resume_from}` and rerun") from None


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


# --- provenance ---------------------------------------------------------------------------------
DEFINES_RUN = ("src", "stages", "conf", "dvc.yaml", "params.yaml", "pyproject.toml", "requirements")
# Every library whose version can change a result: the model and its numerics, data reading, the
# validation split (scikit-learn), tokenization, scoring, quantization, the stored weights.
RESULT_LIBRARIES = ("ftpipe", "torch", "transformers", "tokenizers", "safetensors", "datasets", "pyarrow", "peft",
                    "accelerate", "bitsandbytes", "scikit-learn", "evaluate", "rouge-score", "numpy", "dvc", "dvclive")


def run_info(fingerprint: str, resumed_from: Path | None) -> dict:
    """Library versions and git/DVC state, recorded in the tuned model's ftpipe_train.json."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in RESULT_LIBRARIES:
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

"""A training run: this process's place in the launch, what a method's fit sees (`Run`), the validation
split, and `fit`, which builds the model, trains it and saves it, for the stage and the benchmarks alike."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from ftpipe.core.errors import ConfigError
from ftpipe.methods.base import count_trainable
from ftpipe.trainer import ResumableTrainer
from ftpipe.training.arguments import training_arguments
from ftpipe.training.resume import checkpoint_io


def process_state(cfg):
    """This process's place in the launch (accelerate.PartialState), set up before anything asks.

    PartialState is shared by the whole process: the Trainer sees this one, and every caller of `fit`
    is handed it. Without it, on a machine with no CUDA, accelerate ignores torchrun's environment until
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
    batch_tokens: int | None = None  # train.batch_tokens: token-budget batches (ftpipe.trainer.TokenBudgetSampler)

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
        self.trainer.batch_tokens = self.batch_tokens
        return self.trainer


@dataclass
class Fitted:
    """What `fit` leaves: the trained model (saved in `saved` by every process, written by the main one),
    the run it came from, the method's metrics and the trainable-parameter counts."""

    model: Any
    run: Run
    metrics: dict
    trainable: dict
    saved: Path


def fit(task, method, params, train_set, eval_set, tokenizer, state, callbacks, *, base_dir: Path,
        checkpoint_dir: Path, resume_from: Path | None = None, collator=None) -> Fitted:
    """Build the method's model on the base, train it with the Trainer the params describe, and save it into
    `checkpoint_dir`/final. A checkpoint that cannot be read or written is one line (resume.checkpoint_io).

    `collator`: the batches' collator (default: the task's, or train.packing's flattened batches); the
    benchmarks pass that one wrapped, to count what each batch computes."""
    from ftpipe import packing

    collator = collator or packing.train_collator(task, tokenizer, params.train.packing)
    args = training_arguments(params.train, checkpoint_dir, processes=state.num_processes)
    run = Run(state, args, train_set, collator, tokenizer, callbacks, resume_from, eval_set, batch_tokens=params.train.batch_tokens)
    model = method.build(task, base_dir, tokenizer, params.model, run)
    if params.train.packing:  # a model whose attention would cross packed examples: one line, before training
        packing.check_model(model, collator)
    trainable = count_trainable(model)
    final = Path(checkpoint_dir) / "final"
    with checkpoint_io(checkpoint_dir, resume_from):
        metrics = method.fit(model, run)
        # Every process takes part in saving (a sharded model is gathered first); the main one writes.
        if state.is_main_process:
            shutil.rmtree(final, ignore_errors=True)  # left by a run that died while saving
        state.wait_for_everyone()
        method.save(model, tokenizer, final, run)
    return Fitted(model, run, metrics, trainable, final)


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

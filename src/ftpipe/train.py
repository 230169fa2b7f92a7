"""`train`: the stage's runner. It resumes, sets up logging, calls `fit`, and moves the tuned model into place.

The method plug-in (ftpipe.methods) builds, fits and saves; the runner owns everything that writes:
checkpoints' bookkeeping, DVCLive, provenance and the atomic move of the tuned model into place,
all on the main process only, so the stage can run under a multi-process launcher.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from dvclive import Live
from transformers import EarlyStoppingCallback, set_seed

from ftpipe.core.io import atomic_output
from ftpipe.core.records import TrainRecord
from ftpipe.models.loading import base_identity, load_tokenizer
from ftpipe.precision import resolve as resolve_precision
from ftpipe.core.stage import peak_rss_mb
from ftpipe.training.arguments import effective_batch
from ftpipe.training.provenance import library_versions, run_record
from ftpipe.training.pruning import pruning_callbacks
from ftpipe.training.resume import LiveLogger, checkpoint_location, clear_checkpoints, find_checkpoint, run_fingerprint
from ftpipe.training.run import best_checkpoint, fit, split_validation

log = logging.getLogger(__name__)


def train(params, state, data_dir: Path, base_dir: Path, out_dir: Path, live_dir: Path, checkpoint_dir: Path,
          run_dir: Path) -> TrainRecord | None:
    """Train on `data_dir`/train in the launch `state` (ftpipe.training.run.process_state); the main process
    writes the tuned model to `out_dir`, its DVCLive history to `live_dir` and the run's circumstances
    (RunRecord) to `run_dir`. Returns the train record (None on the other processes)."""
    import datasets

    from ftpipe.methods import get_method
    from ftpipe.tasks import get_task

    task, method = get_task(params.task), get_method(params.method)
    fingerprint = run_fingerprint(params, data_dir, base_dir)
    # $FTPIPE_CHECKPOINTS: storage that outlives the machine (a spot instance's restart resumes from it)
    checkpoint_dir = checkpoint_location(Path(checkpoint_dir), fingerprint, check=state.is_main_process)
    with state.main_process_first():  # the main process discards stale checkpoints before anyone looks
        resume_from = find_checkpoint(checkpoint_dir, fingerprint, cleanup=state.is_main_process)
    set_seed(params.train.seed)  # before the model: its fresh head is drawn from this seed
    tokenizer = load_tokenizer(base_dir, task, trust_remote_code=params.model.trust_remote_code)

    staging = checkpoint_dir / "live"
    live, callbacks = logging_callbacks(params, state, staging, resume_from)
    trial = pruning_callbacks(state)  # inside an ftpipe-search trial only ($FTPIPE_TRIAL): none otherwise
    train_set, eval_set = split_validation(datasets.load_from_disk(str(Path(data_dir) / "train")),
                                           params.train.validation_fraction, params.train.seed, task)
    fitted = fit(task, method, params, train_set, eval_set, tokenizer, state, callbacks + trial,
                 base_dir=base_dir, checkpoint_dir=checkpoint_dir, resume_from=resume_from)
    if not state.is_main_process:
        state.wait_for_everyone()
        return None
    live.end()
    made = train_record(params, state, fitted, base_dir, fingerprint)
    publish(params, fitted, tokenizer, made, out_dir)
    with atomic_output(live_dir) as tmp:
        shutil.copytree(staging, tmp)
    with atomic_output(run_dir) as tmp:
        tmp.mkdir()
        run_record(fitted.metrics, peak_rss_mb(), resume_from).save(tmp)
        for pruning in trial:  # the trial, pruned or not, and its last step: beside the run's record, not the model's
            pruning.record.save(tmp)
    clear_checkpoints(checkpoint_dir)
    log.info("tuned model in %s", out_dir)
    state.wait_for_everyone()
    return made


def logging_callbacks(params, state, staging: Path, resume_from: Path | None) -> tuple[Live | None, list]:
    """(DVCLive, the Trainer's callbacks): the guards first (ftpipe/guards.py), then, on the main process,
    DVCLive and progress; early stopping when asked. DVCLive writes into `staging`, beside the checkpoints,
    copied into place at the end (atomic, like every output); each checkpoint carries a copy of it, so a
    resumed run continues the same history."""
    from ftpipe import guards
    from ftpipe.core import progress

    live, callbacks = None, guards.callbacks()
    if state.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        if resume_from:
            shutil.copytree(resume_from / "live", staging)
        live = Live(str(staging), resume=bool(resume_from), save_dvc_exp=False, dvcyaml=None, report=None)
        callbacks += [LiveLogger(live, staging), progress.trainer_callback()]  # a bar, or plain lines (FTPIPE_PROGRESS)
    if params.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(params.train.early_stopping_patience))
    return live, callbacks


def train_record(params, state, fitted, base_dir: Path, fingerprint: str) -> TrainRecord:
    """What was trained, how, and where it came from: only what the same inputs always give (the run's
    durations and circumstances are its RunRecord), so a retrain to the same weights is the same folder."""
    from ftpipe.card import CARD_TRAIN_KEYS

    metrics = fitted.metrics
    return TrainRecord(
        **fitted.trainable,
        method=dataclasses.asdict(params.method),  # name, type and settings: the card reads them here
        train={k: getattr(params.train, k) for k in CARD_TRAIN_KEYS if hasattr(params.train, k)},
        base_model=base_identity(base_dir),  # where the base came from, not models/base
        precision=resolve_precision(params.train.precision),  # what `auto` meant on this machine
        processes=state.num_processes, effective_batch=effective_batch(fitted.run.args),
        versions=library_versions(), fingerprint=fingerprint, train_loss=metrics.get("train_loss"),
        epoch=metrics.get("epoch"), total_flos=metrics.get("total_flos"), teacher=metrics.get("teacher"),
        token_batches=token_batches(params.train.batch_tokens, fitted.run.train_set),
        **best_checkpoint(fitted.run))


def token_batches(batch_tokens: int | None, train_set) -> dict | None:
    if not batch_tokens:
        return None
    from ftpipe.trainer import effective

    return effective(train_set, batch_tokens)


def publish(params, fitted, tokenizer, made: TrainRecord, out_dir: Path) -> None:
    """The saved model, its tokenizer, train record and card, moved into `out_dir` in one step."""
    from ftpipe.card import write_card

    tokenizer.save_pretrained(str(fitted.saved))
    made.save(fitted.saved)
    write_card(fitted.saved, params, fitted.run)  # README.md: Hub metadata, what it is, how to load it
    with atomic_output(out_dir) as tmp:
        shutil.move(str(fitted.saved), str(tmp))

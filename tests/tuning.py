"""A method trained a few steps on a tiny task through the train() the stage calls, and what must hold of
it whatever the method: shared by tests/unit/test_methods.py and the method contract in tests/contract/."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

from conftest import REPO


def params_for(experiment: str, method: str, monkeypatch, edit: Callable[[dict], None] | None = None, **train):
    """The validated params of `experiment` with `method`, trained briefly (6 steps at 5e-3 unless `train` says)."""
    from ftpipe.params import compose, validate

    monkeypatch.chdir(REPO)
    settings = {"max_steps": 6, "validation_fraction": 0, "logging_steps": 2, "lr": 5e-3, **train}
    raw = compose([f"experiment={experiment}", f"method={method}", *(f"train.{k}={v}" for k, v in settings.items())])
    if edit:
        edit(raw)
    return validate(raw, ("task", "model", "method", "train"))


def planning_run(p, data: Path):
    """What build needs of a run before training (AdaLoRA's schedule reads the planned steps)."""
    import datasets

    from ftpipe.training.arguments import training_arguments

    return SimpleNamespace(args=training_arguments(p.train, Path("unused")), train_set=datasets.load_from_disk(str(data / "train")),
                           state=SimpleNamespace(num_processes=1), local_rank=0)


def trained(base: Path, data: Path, p, tmp_path: Path, monkeypatch):
    """(the model as built before training, its trainable names, the tuned model loaded back, the train record)."""
    from transformers import set_seed

    from ftpipe.methods import get_method, load_tuned
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task
    from ftpipe.train import train
    from ftpipe.training.run import process_state

    monkeypatch.chdir(tmp_path)
    task = get_task(p.task)
    tokenizer = load_tokenizer(base, task)
    set_seed(p.train.seed)
    before = get_method(p.method).build(task, base, tokenizer, p.model, planning_run(p, data))
    trainable = {n for n, q in before.named_parameters() if q.requires_grad}
    before = {n: q.detach().clone() for n, q in before.named_parameters()}
    train(p, process_state(p.train), data, base, tmp_path / "tuned", tmp_path / "live", tmp_path / "checkpoints", tmp_path / "run")
    set_seed(p.train.seed)  # the same draw for a head that is not part of what was saved
    after = dict(load_tuned(task, tmp_path / "tuned", base, tokenizer).named_parameters())
    return before, trainable, after, json.loads((tmp_path / "tuned" / "ftpipe_train.json").read_text())


def check(before, trainable, after, record, p) -> None:
    """What must train changed, what must stay fixed is bit-identical, and the record says so."""
    method = p.method.name
    assert record["method"]["name"] == method and record["trainable_params"] > 0
    assert trainable, "nothing trains"
    # QLoRA's frozen base is packed 4-bit during training and reloaded in full precision from the
    # unchanged base folder for evaluation: those tensors cannot be compared bit for bit.
    frozen = [n for n in before if n not in trainable and "original_module" not in n and before[n].dtype != torch.uint8]
    changed_frozen = [n for n in frozen if not torch.equal(before[n], after[n].to(before[n].dtype))]
    assert not changed_frozen, f"{method}: frozen weights changed: {changed_frozen[:5]}"
    changed = [n for n in trainable if not torch.equal(before[n], after[n].to(before[n].dtype))]
    assert len(changed) >= len(trainable) / 2, f"{method}: only {len(changed)} of {len(trainable)} trainable tensors changed"
    if p.method.type == "peft":  # parameter-efficient: adapters are a small part of the model
        assert record["trainable_params"] < record["total_params"] / 2, record

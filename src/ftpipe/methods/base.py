"""The interface every method plug-in implements, and the default: the Trainer loop on the whole model."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ftpipe.models.loading import load_for_task

log = logging.getLogger(__name__)


@dataclass
class MethodConfig:
    """Fields every method section has; plug-ins extend it."""

    name: str = "full"  # the config's name (conf/method/<name>.yaml)
    type: str = "full"  # the plug-in module in ftpipe.methods
    needs: list[str] = field(default_factory=list)  # task capabilities it needs (ftpipe.tasks.base.CAPABILITIES); [] fits every task
    lr: Optional[float] = None  # its default train.lr under an experiment written for another method (ftpipe_lr resolver)

    def packing_conflict(self) -> Optional[str]:
        """Why this method cannot train on packed batches (train.packing), or None."""
        return None


class Method:
    """Builds the trainable model from the base, fits it, saves it, and loads what it saved.

    `run` (ftpipe.training.run.Run) is the rank-aware runner: it knows the data, the Trainer settings and
    the process; a method that is not a gradient loop replaces `fit` and `save`.
    """

    def __init__(self, cfg):
        self.cfg = cfg

    def build(self, task, base_dir: Path, tokenizer, model_cfg, run=None):
        return load_for_task(task, base_dir, tokenizer, trust_remote_code=model_cfg.trust_remote_code)

    def fit(self, model, run) -> dict:
        trainer = run.make_trainer(model)
        return trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None).metrics

    def save(self, model, tokenizer, out_dir: Path, run) -> None:
        """Called on every process (a sharded model is gathered); only the main one writes."""
        run.trainer.save_model(str(out_dir))  # a PEFT model saves only its adapter

    @classmethod
    def load(cls, task, tuned_dir: Path, base_dir: Path, tokenizer, trust_remote_code: bool = False):
        return load_for_task(task, tuned_dir, tokenizer, trust_remote_code=trust_remote_code)


def count_trainable(model) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / max(total, 1))
    return {"trainable_params": trainable, "total_params": total, "trainable_fraction": trainable / max(total, 1)}

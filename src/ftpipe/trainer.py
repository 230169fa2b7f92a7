"""The Trainer every gradient-based method runs: transformers' own, made to resume exactly.

Its own module so that a method with its own loss (distill) can subclass it without importing the
runner, and the stages that only load models do not depend on the runner's code.
"""

from __future__ import annotations

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler


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

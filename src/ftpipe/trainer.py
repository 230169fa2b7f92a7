"""The Trainer every gradient-based method runs: transformers' own, made to resume exactly.

Its own module so that a method with its own loss (distill) can subclass it without importing the
runner, and the stages that only load models do not depend on the runner's code.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import torch
from transformers import Trainer, TrainerCallback
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


class ReturnFreedMemory(TrainerCallback):
    """After every optimizer step on a CPU, glibc's malloc hands the heap pages it holds free back to the OS.

    Length-grouped batches are padded to their own longest row, so every step allocates activations
    of other sizes. On a CPU those come from glibc's heap, which keeps what is freed, fragmented, for
    reuse: on the Yelp benchmark (MiniLM, batch 8, up to 512 tokens) the peak RSS grew with every
    epoch, to 1.37x the padded-to-512 recipe's. With `malloc_trim` after each step it stays at the
    recipe's, for about 14% of the training speed (the next step faults the pages back in;
    benchmarks/README.md has the figures). Trimming every 8 steps kept less of the gain and was no
    faster in one run. A no-op on GPUs (their caching allocator is another matter) and where the C
    library is not glibc.
    """

    def __init__(self):
        name = ctypes.util.find_library("c")
        self.trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None

    def on_step_end(self, args, state, control, **kwargs):
        if self.trim and not torch.cuda.is_available():
            self.trim(0)


class ResumableTrainer(Trainer):
    """A Trainer whose length-grouped batches come in the same order after a resume, and whose
    host memory does not grow with the variety of batch shapes (ReturnFreedMemory)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(ReturnFreedMemory())

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            return EpochSeededSampler(sampler, self.args.data_seed or self.args.seed)
        return sampler  # RandomSampler: accelerate already seeds it per epoch

"""The Trainer every gradient-based method runs: transformers' own, made to resume exactly.

Its own module so that a method with its own loss (distill) can subclass it without importing the
runner, and the stages that only load models do not depend on the runner's code.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import BatchRebalanceSampler, LengthGroupedSampler

from ftpipe.inference import row_lengths, token_budget_batches  # evaluation's batches too: one definition for both


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


class TokenBudgetSampler(BatchRebalanceSampler):
    """Token-budget batches in training (`train.batch_tokens`): rows sorted by length and cut into batches of at
    most a number of tokens, padding included (ftpipe.inference.token_budget_batches, which cuts
    `evaluate.batch_tokens` batches too), so short rows make large batches and each batch pads only to rows of
    about its own length.

    Whole batches, not rows, are shuffled from (seed, epoch) alone: the order is reproducible from the run's
    seed and the same after a resume. The batches do not depend on the seed or the epoch, so every epoch has
    as many. With several processes the shuffled batches are dealt round-robin, the list first padded to a
    multiple of the world size with batches from its start, so every process takes as many steps (the
    padded ones repeat a few rows in that epoch). Iterating gives this process's batches for the epoch
    `set_epoch` set (the Trainer calls it at every epoch start).

    A BatchRebalanceSampler only by type: the Trainer hands that type to its DataLoader as the batch
    sampler and leaves its dealing to processes alone, which is what this sampler does itself. None of
    BatchRebalanceSampler's own code runs here (its __init__ is not called)."""

    def __init__(self, lengths, batch_tokens: int, seed: int = 0, shuffle: bool = True, world_size: int = 1, rank: int = 0):
        self.batches = token_budget_batches(lengths, batch_tokens)
        self.seed, self.shuffle, self.world_size, self.rank, self.epoch = seed, shuffle, max(1, world_size), rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_batches(self) -> list[list[int]]:
        """Every process's batches this epoch, in order, padded to a multiple of the world size."""
        order = list(range(len(self.batches)))
        if self.shuffle:  # numpy's generator: the same order on every machine and process for (seed, epoch)
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.batches)).tolist()
        pad = -len(order) % self.world_size if order else 0
        order += [order[i % len(order)] for i in range(pad)]
        return [self.batches[i] for i in order]

    def __iter__(self):
        return iter(self.epoch_batches()[self.rank::self.world_size])

    def __len__(self) -> int:
        return -(-len(self.batches) // self.world_size)


def effective(train_set, batch_tokens: int) -> dict:
    """The effective batch of a token-budget run, in rows and tokens, over the whole training set."""
    lengths = row_lengths(train_set).tolist()
    return stats(token_budget_batches(lengths, batch_tokens), lengths)


def stats(batches: list[list[int]], lengths) -> dict:
    """The effective batch in rows and tokens (padded and real), and the padding waste (padded / real - 1)."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    real = sum(int(lengths[i]) for b in batches for i in b)
    rows = sum(len(b) for b in batches)
    return {"batches": len(batches), "rows_per_batch": round(rows / max(len(batches), 1), 2),
            "tokens_per_batch": round(padded / max(len(batches), 1), 1), "padding_waste": round(padded / max(real, 1) - 1, 4)}


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (2.33+): the heap's totals in bytes, every arena summed."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                      "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


class ReturnFreedMemory(TrainerCallback):
    """Every EVERY_STEPS optimizer steps on a CPU, glibc's malloc hands the heap pages it holds free back to the
    OS, when batches are rows padded to their longest and the heap holds more free than FREE_FRACTION of
    what is in use.

    Length-grouped batches are padded to their own longest row, so every step allocates activations of
    other sizes. On a CPU those come from glibc's heap, which keeps what is freed, fragmented, for reuse:
    over 3 epochs of the Yelp benchmark's 475 rows (MiniLM, batch 8, up to 512 tokens) the train peak RSS
    reached 4,658 MB untrimmed, 4,052 MB trimmed after every step and 4,190 MB trimmed every 8 steps.
    The trim's cost is in the step after it, which faults the pages back in: in one run that trimmed in
    alternate blocks of 4 steps, a step after a trim ran at 0.70 (Yelp) and 0.76 (QA) of a plain loop on
    the same batch, a step after none at 0.92 and 0.94. Every 8 steps keeps most of the saving for an
    eighth of that cost (benchmarks/README.md has the figures).

    Where it is pure cost, it is skipped:
    - short steps with small activations: the entity tagger's heap held 77-94 MB free against 279 MB in
      use after each step (Yelp's 529-1154 MB against 347-602), and the trim was about 10% of its 150 ms
      steps;
    - token-budget batches (`enabled` False): every batch holds about the same number of tokens, so
      activations come in about one size. Over 3 epochs of the same rows (budget 2,048) the untrimmed
      peak was 3,282 MB, under the row batches' trimmed one (3,728 MB in that run, whose replayed
      batches were kept in the heap and raised both).
    A no-op on GPUs (their caching allocator is another matter) and where the C library is not glibc; with
    a glibc older than 2.33 (no `mallinfo2`) it trims at every EVERY_STEPS step it is enabled for.
    """

    FREE_FRACTION = 0.5
    EVERY_STEPS = 8

    def __init__(self):
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self.trim = getattr(libc, "malloc_trim", None)
        self.info = getattr(libc, "mallinfo2", None)
        if self.info is not None:
            self.info.restype = _MallInfo2
        self.enabled = True

    def holds_too_much(self) -> bool:
        if self.info is None:
            return True
        heap = self.info()
        return heap.fordblks > self.FREE_FRACTION * heap.uordblks

    def on_step_end(self, args, state, control, **kwargs):
        due = state.global_step % self.EVERY_STEPS == 0
        if due and self.enabled and self.trim and not torch.cuda.is_available() and self.holds_too_much():
            self.trim(0)


class ResumableTrainer(Trainer):
    """A Trainer whose length-grouped batches come in the same order after a resume, and whose
    host memory does not grow with the variety of batch shapes (ReturnFreedMemory).

    With `batch_tokens` (train.batch_tokens, set by the run after construction) it trains on token-budget
    batches (TokenBudgetSampler) and evaluates the validation split in them too."""

    batch_tokens: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.freed_memory = ReturnFreedMemory()
        self.add_callback(self.freed_memory)

    def train(self, *args, **kwargs):
        self.freed_memory.enabled = not self.batch_tokens  # set after construction: see ReturnFreedMemory
        return super().train(*args, **kwargs)

    def _token_budget(self, dataset, shuffle: bool):
        return TokenBudgetSampler(row_lengths(dataset), self.batch_tokens, seed=self.args.data_seed or self.args.seed,
                                  shuffle=shuffle, world_size=self.args.world_size, rank=self.args.process_index)

    def _get_eval_sampler(self, eval_dataset):
        # One process only: across processes, batches of different sizes could not be gathered for the loss.
        if self.batch_tokens and self.args.world_size == 1 and "input_ids" in getattr(eval_dataset, "column_names", ()):
            return self._token_budget(eval_dataset, shuffle=False)
        return super()._get_eval_sampler(eval_dataset)

    def _get_train_sampler(self, train_dataset=None):
        if self.batch_tokens:
            return self._token_budget(train_dataset if train_dataset is not None else self.train_dataset, shuffle=True)
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            return EpochSeededSampler(sampler, self.args.data_seed or self.args.seed)
        return sampler  # RandomSampler: accelerate already seeds it per epoch

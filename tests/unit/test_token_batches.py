"""Token-budget batches (ftpipe.trainer.TokenBudgetSampler, ftpipe.inference): the budget, every row once, the seed, the ranks, the padding."""

import random

import datasets
import pytest

from ftpipe.inference import MAX_PADDING, token_budget_batches
from ftpipe.trainer import TokenBudgetSampler, effective, stats

# Lengths shaped like a review set: many short rows, a long tail, one row over the budget.
_RNG = random.Random(0)
LENGTHS = [_RNG.choice([12, 30, 60, 90, 140, 250, 500]) + _RNG.randrange(8) for _ in range(400)] + [1100]
BUDGET = 1024


def test_batches_respect_the_budget_and_hold_every_row_once():
    batches = token_budget_batches(LENGTHS, BUDGET)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    for b in batches:  # padded to its longest; only a row longer than the budget stands alone over it
        assert len(b) * max(LENGTHS[i] for i in b) <= BUDGET or len(b) == 1
        assert stats([b], LENGTHS)["padding_waste"] <= MAX_PADDING  # each batch's own, not only the mean
    assert max(len(b) for b in batches) > 8 * min(len(b) for b in batches)  # short rows, big batches


def test_the_padding_cap_splits_a_batch_of_sparse_lengths_that_the_budget_alone_would_keep():
    sparse = [10, 11, 30, 31, 32]  # all five fit 1024 tokens padded to 32, at a waste of 0.40
    assert token_budget_batches(sparse, 1024, max_padding=1.0) == [[0, 1, 2, 3, 4]]
    assert token_budget_batches(sparse, 1024) == [[0, 1], [2, 3, 4]]


def test_padding_waste_is_low_against_row_batches():
    waste = stats(token_budget_batches(LENGTHS, BUDGET), LENGTHS)["padding_waste"]
    shuffled = list(range(len(LENGTHS)))
    random.Random(1).shuffle(shuffled)
    rows = stats([shuffled[i:i + 8] for i in range(0, len(shuffled), 8)], LENGTHS)["padding_waste"]
    assert waste <= 0.05 < rows
    recorded = effective(datasets.Dataset.from_dict({"input_ids": [[0] * n for n in LENGTHS]}), BUDGET)  # what the train record keeps
    assert recorded["padding_waste"] == waste and recorded["rows_per_batch"] * recorded["batches"] == pytest.approx(len(LENGTHS), abs=1)


def test_every_epoch_is_every_row_once_in_an_order_drawn_from_seed_and_epoch():
    sampler = TokenBudgetSampler(LENGTHS, BUDGET, seed=42)
    first = list(sampler)
    assert sorted(i for b in first for i in b) == list(range(len(LENGTHS))) and len(first) == len(sampler)
    again = TokenBudgetSampler(LENGTHS, BUDGET, seed=42)
    assert list(again) == first  # a resumed run rebuilds the same order from the seed alone
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(map(sorted, sampler)) == sorted(map(sorted, first))  # same batches, reshuffled
    assert list(TokenBudgetSampler(LENGTHS, BUDGET, seed=43)) != first
    assert list(TokenBudgetSampler(LENGTHS, BUDGET, shuffle=False)) == token_budget_batches(LENGTHS, BUDGET)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_every_rank_takes_the_same_number_of_batches_and_together_every_row(world):
    ranks = [TokenBudgetSampler(LENGTHS, BUDGET, seed=7, world_size=world, rank=r) for r in range(world)]
    for r in ranks:
        r.set_epoch(2)
    dealt = [list(r) for r in ranks]
    assert len({len(d) for d in dealt}) == 1 and all(len(d) == len(r) for d, r in zip(dealt, ranks))
    seen = [i for d in dealt for b in d for i in b]
    assert set(seen) == set(range(len(LENGTHS))) and len(seen) - len(LENGTHS) <= max(len(b) for d in dealt for b in d) * (world - 1)


def test_fewer_batches_than_ranks_still_gives_each_rank_one():
    assert [len(list(TokenBudgetSampler([5, 6], 100, world_size=3, rank=r))) for r in range(3)] == [1, 1, 1]


def test_the_trainer_trains_and_validates_on_token_budget_batches(tmp_path):
    """Through ftpipe's Trainer: one epoch sees every row once, in batches within the budget, as many steps
    as the sampler has batches; the validation split is evaluated in token-budget batches too."""
    from collections import Counter

    import datasets
    from test_packing import DIALOGUES, TINY_LLAMA, tiny_llama

    from ftpipe.core.config import TrainConfig
    from ftpipe.models.sources import tiny_tokenizer
    from ftpipe.packing import train_collator
    from ftpipe.params import validate
    from ftpipe.tasks import get_task
    from ftpipe.trainer import ResumableTrainer
    from ftpipe.training.arguments import training_arguments

    tokenizer = tiny_tokenizer("llama", TINY_LLAMA["vocab_size"])
    task = get_task(validate({"task": {"name": "dialogsum", "type": "summarization", "max_length": 192}}, ("task",)).task)
    records = [{"id": str(i), "dialogue": d, "references": [s]} for i, (d, s) in enumerate(DIALOGUES * 4)]
    data = task.tokenize(datasets.Dataset.from_list(records), tokenizer, "train", None, 10)
    budget = 2 * max(len(ids) for ids in data["input_ids"])
    seen, collate = [], train_collator(task, tokenizer, False)

    def counting(features):
        seen.append([tuple(f["input_ids"]) for f in features])
        return collate(features)

    cfg = TrainConfig(lr=1e-3, epochs=1, batch_tokens=budget, logging_steps=1, report_to=[], precision="fp32")
    trainer = ResumableTrainer(model=tiny_llama(tokenizer), args=training_arguments(cfg, tmp_path), train_dataset=data,
                               eval_dataset=data, data_collator=counting)
    trainer.batch_tokens = cfg.batch_tokens
    trainer.train()
    assert Counter(row for batch in seen for row in batch) == Counter(tuple(ids) for ids in data["input_ids"])
    assert all(len(b) * max(map(len, b)) <= budget for b in seen) and max(map(len, seen)) > 2
    assert trainer.state.global_step == len(seen) == len(token_budget_batches([len(i) for i in data["input_ids"]], budget))
    assert not trainer.freed_memory.enabled  # activations of about one size: no heap trim (ReturnFreedMemory)
    seen.clear()
    assert trainer.evaluate()["eval_loss"] > 0 and len(seen) == len(token_budget_batches([len(i) for i in data["input_ids"]], budget))

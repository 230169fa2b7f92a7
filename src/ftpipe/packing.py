"""`train.packing`: padding-free training batches for causal-LM tasks.

Each batch of train.batch_size examples is flattened into one row with no padding, by transformers'
DataCollatorWithFlattening: `position_ids` restart at 0 for every example, and the first label of
each example is -100 (its separator), so no example's first token is predicted from the previous
example's last. transformers (masking_utils.find_packed_sequence_indices) reads the restarts as
packed sequences and builds a block-diagonal causal mask (SDPA, eager, flex) or variable-length
kernels (flash attention); the batch carries no attention_mask, which would switch that off.

The optimizer sees the same examples in the same batches as padded training; the loss over a
batch is the same sum over the same summary tokens, divided by the same count (the Trainer's
`num_items_in_batch`, counted over labels[..., 1:], is unchanged: position 0 of every example is
-100 in both layouts), so loss and gradients match padded training to float tolerance
(tests/test_packing.py), gradient accumulation included.

Refused, one line each: a task whose rows are not causal-LM rows (Task.packs), a method that puts
virtual tokens before the text (MethodConfig.packing_conflict: prompt and prefix tuning), when the
params load (ftpipe.params.check_packing); and, before training, a model whose outputs change when
examples are packed (check_model).
"""

from __future__ import annotations

import logging

from ftpipe.core.errors import ConfigError

log = logging.getLogger(__name__)


def train_collator(task, tokenizer, packing: bool):
    """The collator the Trainer trains with: the task's own (padded batches), or with
    train.packing the flattening one."""
    return PackedCollator() if packing else task.collator(tokenizer)


class PackedCollator:
    """transformers' DataCollatorWithFlattening, plus `use_cache=False` in every batch.

    Written by hand, that one key: transformers detects packed sequences only when no cache is passed
    (masking_utils._preprocess_mask_arguments: `cache is None`), and a model whose config has
    use_cache=True (most do) makes an empty DynamicCache on every forward pass, so attention would
    cross examples. The Trainer turns the config's use_cache off (TrainingArguments.use_cache=False),
    but a batch from this collator is right wherever it is fed (a custom loop, a benchmark, a test).
    """

    def __init__(self):
        from transformers import DataCollatorWithFlattening

        self.flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)

    def __call__(self, rows):
        return {**self.flatten(rows), "use_cache": False}


def check_model(model, collator) -> None:
    """Two short examples through the model, packed by `collator` and one at a time: their logits must
    agree. A model whose attention ignores position_ids, or an attention implementation that transformers
    does not unpack, lets the second example see the first, and is refused here, before training."""
    import torch

    params = list(model.parameters())
    if any(p.numel() == 0 for p in params):  # DeepSpeed ZeRO-3 partitions the weights at load: no forward pass here
        log.warning("train.packing: the model's weights are partitioned (ZeRO-3): not checked before training")
        return
    embeddings = model.get_input_embeddings()
    device, vocab = embeddings.weight.device, embeddings.num_embeddings
    ids = torch.randint(0, vocab, (20,), generator=torch.Generator().manual_seed(0)).tolist()
    rows = [{"input_ids": ids[:8], "labels": ids[:8]}, {"input_ids": ids[8:], "labels": ids[8:]}]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collator(rows).items() if k != "labels"}
            packed = model(**batch).logits[0].float()
            alone = torch.cat([model(input_ids=torch.tensor([r["input_ids"]], device=device), use_cache=False).logits[0].float()
                               for r in rows])
    finally:
        model.train(was_training)
    # fp32 agrees to ~1e-6 of the logits' scale; bf16/fp16 round differently in the two layouts.
    tolerance = 1e-3 if embeddings.weight.dtype == torch.float32 else 5e-2
    gap = float((packed - alone).abs().max() / alone.abs().max().clamp_min(1e-6))
    if gap > tolerance:
        attention = getattr(getattr(model, "config", None), "_attn_implementation", None)
        raise ConfigError("train.packing", f"{type(model).__name__} (attention {attention}) gives packed examples other "
                                           f"outputs than the same examples alone (relative gap {gap:.2g}): its attention "
                                           "crosses examples; set train.packing=false")

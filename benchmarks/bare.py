"""The bare-loop arm: the ceiling of the software stack, on the very batches ftpipe computed.

ftpipe's arms keep the batches its collator produced (common.ftpipe_fit) and the inputs its evaluation
handed the model (ForwardLog). After ftpipe's tuned evaluation, the same model (unwrapped from
accelerate's autocast) runs them again in a plain PyTorch loop under ftpipe's own precision context:
forward, backward and the optimizer step ftpipe's Trainer takes (gradients clipped to train.max_grad_norm,
torch's fused AdamW over the Trainer's decay and no-decay groups) for training, forward alone under
inference_mode for evaluation. No Trainer, no callbacks, no schedule, no data pipeline: what is left is
the cost of the model's own kernels on those shapes and of the same optimizer arithmetic.

Both sides are timed in steady state: the first `warmup_steps` steps are left out (thread-pool and
allocator ramp-up, kernel selection) and the rest timed from the end of the last warm-up step to the
end of the last step, on the same batches, so `train_steady` against `bare_train` (and `eval_steady`
against `bare_eval`) compares like with like. ftpipe's whole `train_s` (fixed costs included) is
reported beside it.
"""

from __future__ import annotations

import time

WARMUP_STEPS = 3


def warmup_steps(steps: int) -> int:
    """Warm-up steps left out of a steady-state timing of `steps`: up to WARMUP_STEPS, at most a third."""
    return min(WARMUP_STEPS, max(1, steps // 3)) if steps > 1 else 0


def batch_stats(batch: dict) -> tuple[int, int, int]:
    """(positions computed, real tokens, sum of squared real lengths) of one collated batch."""
    ids, mask = batch["input_ids"], batch.get("attention_mask")
    if mask is None and "position_ids" in batch:  # padding-free: examples told apart by position_ids restarts
        positions = batch["position_ids"].flatten()
        starts = (positions == 0).nonzero().flatten().tolist() + [positions.numel()]
        lengths = [b - a for a, b in zip(starts, starts[1:])]
    elif mask is None:
        lengths = [ids.shape[-1]] * ids.shape[0]
    else:
        lengths = mask.sum(-1).tolist()
    return ids.numel(), int(sum(lengths)), int(sum(n * n for n in lengths))


def steady(prefix: str, stats: list[tuple[int, int, int]], ends: list[float], per_step: int = 1) -> dict:
    """Steady-state figures of a run whose step i ended at ends[i] and computed batches
    [i·per_step, (i+1)·per_step) with `stats` each: seconds and tokens of the steps after the warm-up, and
    each of those steps' seconds (`{prefix}_step_s`: the two sides' steps pair up, batch for batch)."""
    warm = warmup_steps(len(ends))
    if len(ends) < 2 or not warm:
        return {}
    counted = stats[warm * per_step:len(ends) * per_step]
    return {f"{prefix}_s": round(ends[-1] - ends[warm - 1], 4), f"{prefix}_steps": len(ends) - warm,
            f"{prefix}_step_s": [round(b - a, 4) for a, b in zip(ends[warm - 1:], ends[warm:])],
            f"{prefix}_computed_tokens": sum(s[0] for s in counted), f"{prefix}_real_tokens": sum(s[1] for s in counted),
            f"{prefix}_squared_lengths": sum(s[2] for s in counted)}


class ForwardLog:
    """Keeps the inputs of every forward call of `model` (one per evaluation batch) and when each ended."""

    def __init__(self, model, device: str):
        self.batches, self.ends, self.device = [], [], device
        self.handles = [model.register_forward_pre_hook(self._inputs, with_kwargs=True), model.register_forward_hook(self._end)]

    def _inputs(self, module, args, kwargs):
        self.batches.append({k: v for k, v in kwargs.items() if k in ("input_ids", "attention_mask", "token_type_ids") and v is not None})

    def _end(self, module, args, output):
        _sync(self.device)
        self.ends.append(time.perf_counter())

    def steady(self, prefix: str) -> dict:
        for handle in self.handles:
            handle.remove()
        return steady(prefix, [batch_stats(b) for b in self.batches], self.ends)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _unwrapped(model):
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model, keep_fp32_wrapper=False)  # the bare loop sets its own precision


def train(model, batches: list[dict], train_cfg, device: str) -> dict:
    """A plain loop over `batches` taking ftpipe's optimizer step: forward, backward, then (every
    `grad_accum` batches) gradients clipped to `max_grad_norm` and torch's fused AdamW over the Trainer's
    two parameter groups; its steady state as `bare_train_*`.

    It starts from a heap with its free pages handed back (`malloc_trim`, once): it runs second, in the
    process whose heap ftpipe's training grew, and would otherwise reuse pages that ftpipe paid to fault
    in (benchmarks/README.md, "the benchmark's own heap")."""
    import torch
    from transformers import Trainer

    from ftpipe.precision import autocast
    from ftpipe.trainer import ReturnFreedMemory

    trim = ReturnFreedMemory().trim
    if trim and not device.startswith("cuda"):
        trim(0)

    model = _unwrapped(model)
    model.train()
    # The optimizer step the Trainer takes, in plain torch: the same arithmetic, so the ratio measures the
    # stack around it and not a lighter recipe. Fused, as the Trainer's default (adamw_torch_fused); the
    # for-loop AdamW took 1.16x the fused one's step on MiniLM (results/cpu-profile.md). Weight decay on
    # the Trainer's own split (its method reads no state of the Trainer).
    decayed = set(Trainer.get_decay_parameter_names(None, model))
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trained if n in decayed], "weight_decay": train_cfg.weight_decay},
              {"params": [p for n, p in trained if n not in decayed], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=train_cfg.lr, fused=True)
    params = [p for _, p in trained]
    ends = []
    for i, batch in enumerate(batches, 1):
        batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
        with autocast(train_cfg.precision):
            loss = model(**batch).loss
        loss.backward()
        if i % train_cfg.grad_accum:
            continue
        if train_cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, train_cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        ends.append(time.perf_counter())
    return steady("bare_train", [batch_stats(b) for b in batches], ends, train_cfg.grad_accum)


def forward(model, batches: list[dict], precision: str, device: str) -> dict:
    """The same evaluation inputs through the model alone; its steady state as `bare_eval_*`."""
    import torch

    from ftpipe.precision import autocast

    model = _unwrapped(model)
    model.eval()
    ends = []
    with torch.inference_mode(), autocast(precision):
        for batch in batches:
            model(**{k: v.to(device) for k, v in batch.items()})
            _sync(device)
            ends.append(time.perf_counter())
    return steady("bare_eval", [batch_stats(b) for b in batches], ends)


def compare(out: dict, model, log: ForwardLog | None, batches: list[dict], train_cfg, eval_precision: str, device: str) -> None:
    """The bare loop after ftpipe's arm: ftpipe's evaluation steady state from `log`, then the bare forward
    on its inputs, then the bare training on ftpipe's training batches (last: it changes the weights)."""
    if log is not None:
        out |= log.steady("eval_steady")
        out |= forward(model, log.batches, eval_precision, device)
    from ftpipe.precision import resolve

    if batches and resolve(eval_precision) != "int8":  # int8 evaluation quantized the model in place: nothing left to train
        out |= train(model, batches, train_cfg, device)

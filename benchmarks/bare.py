"""The bare-loop arm: the ceiling of the software stack, on the very batches ftpipe computed.

ftpipe's arms keep the batches its collator produced (common.ftpipe_fit) and the inputs its evaluation
handed the model (ForwardLog). After ftpipe's tuned evaluation, the same model (unwrapped from
accelerate's autocast) runs them again in a plain PyTorch loop under ftpipe's own precision context:
forward, backward and torch's fused AdamW step per batch for training, forward alone under inference_mode
for evaluation. No Trainer, no callbacks, no data pipeline, no clipping and no schedule: what is left
is the cost of the model's own kernels on those shapes.

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
    [i·per_step, (i+1)·per_step) with `stats` each: seconds and tokens of the steps after the warm-up."""
    warm = warmup_steps(len(ends))
    if len(ends) < 2 or not warm:
        return {}
    counted = stats[warm * per_step:len(ends) * per_step]
    return {f"{prefix}_s": round(ends[-1] - ends[warm - 1], 4), f"{prefix}_steps": len(ends) - warm,
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


def train(model, batches: list[dict], precision: str, lr: float, device: str) -> dict:
    """A plain loop over `batches`: forward, backward, torch's AdamW step; its steady state as `bare_train_*`."""
    import torch

    from ftpipe.precision import autocast

    model = _unwrapped(model)
    model.train()
    # Fused, as the Trainer's default (adamw_torch_fused): a ceiling must not pay a slower optimizer than ftpipe
    # (the for-loop AdamW took 1.16x the fused one's step on MiniLM, results/cpu-profile.md).
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, fused=True)
    ends = []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
        with autocast(precision):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        ends.append(time.perf_counter())
    return steady("bare_train", [batch_stats(b) for b in batches], ends)


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
        out |= train(model, batches, train_cfg.precision, train_cfg.lr, device)

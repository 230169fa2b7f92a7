"""How far from the machine's own limit each arm runs, measured against this run's peaks.

- The peaks: a matmul of the model's shapes (a batch of 2048 tokens through its widest linear layer)
  in fp32 and bf16, and the memory bandwidth of reading a 1 GiB tensor, timed in a fresh process at
  the start of the run with the arms' thread count, after WARMUP_S of warm-up (a cold first timing
  read 64 GFLOP/s where a warm one reads 170), as the best of several timings whose spread is kept. A datasheet peak would say nothing about a shared
  2-core VM, and on CPUs the bf16 peak depends on AMX / AVX512-BF16, so `cpu_flags` is recorded too.
- Training and evaluation count useful FLOPs on real tokens only (padding is waste, reported apart):
  per token, the forward pass is 2·N (N: non-embedding parameters) and the backward pass 2·N for the
  activations plus 2·T for the weights that train (T; T = N in full fine-tuning, so 6·N, and about
  4·N on a frozen base as in LoRA); attention adds 4·L·d·s per token forward (s: the example's own
  length; causal masking not halved, as in PaLM's MFU), three times that in training.
- Token-by-token generation is bound by memory, not FLOPs: each forward call reads every weight and
  the KV cache so far, so it reports those bytes per second against the measured bandwidth.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.bare import batch_stats

FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


WARMUP_S = 1.5  # the first timings on these VMs are slow (frequency and thread-pool ramp-up): warm past them
TIMINGS = 7
SPREAD_FLAG = 0.10  # a peak whose timings spread wider than this is flagged as noisy


def _timings(fn, repeats: int = TIMINGS, warmup_s: float = WARMUP_S) -> list[float]:
    """Seconds per call of `fn`, `repeats` times, after calling it for at least `warmup_s` seconds."""
    start = time.perf_counter()
    while time.perf_counter() - start < warmup_s:
        fn()
    seconds = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - begin)
    return seconds


def _rate(out: dict, key: str, work: float, seconds: list[float]) -> None:
    """`key` is the best rate (work / fastest call), with the min/median/max of all the timed calls beside
    it and `key_noisy` when they spread (max/min - 1) over SPREAD_FLAG: a neighbour took the CPU."""
    rates = sorted(work / s for s in seconds)
    out[key] = rates[-1]
    out[f"{key}_spread"] = {"min": rates[0], "median": rates[len(rates) // 2], "max": rates[-1],
                            "relative": round(rates[-1] / rates[0] - 1, 3)}
    if rates[-1] / rates[0] - 1 > SPREAD_FLAG:
        out.setdefault("noisy", []).append(key)


def measure_peaks(spec, model_dir: str) -> dict:
    """This machine's matmul peak (FLOP/s, fp32 and bf16) at the model's shapes and its read bandwidth,
    each the best of TIMINGS calls after WARMUP_S of warm-up, with their spread."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    d = config.hidden_size
    wide = getattr(config, "intermediate_size", 4 * d)
    tokens = 2048
    warmup_s = 0.1 if spec.tiny else WARMUP_S  # the smoke test checks the wiring, never the figure
    out = {"matmul_shape": [tokens, d, wide], "threads": torch.get_num_threads(), "cpu_flags": cpu_flags(),
           "warmup_s": warmup_s, "timings": TIMINGS}
    sync = torch.cuda.synchronize if spec.device.startswith("cuda") else (lambda: None)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(tokens, d, dtype=dtype, device=spec.device)
        b = torch.randn(d, wide, dtype=dtype, device=spec.device)
        _rate(out, f"peak_{precision}_flops", 2 * tokens * d * wide, _timings(lambda: (a @ b, sync()), warmup_s=warmup_s))
    big = torch.ones(2**28, dtype=torch.float32, device=spec.device)  # 1 GiB: far past every cache
    _rate(out, "bandwidth_bytes_per_s", big.numel() * 4, _timings(lambda: big.sum().item(), warmup_s=warmup_s))
    return out


def cpu_flags() -> list[str]:
    try:
        line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return [f for f in FLAGS if f in line.split()]


def off_heap(tensor):
    """A copy of a CPU tensor in its own anonymous memory map, outside malloc's heap. The batches the bare loop
    replays are kept for the whole of ftpipe's training: kept in the heap, each would pin a chunk among the
    activations every step frees, so ftpipe's heap would fragment and grow as no user's run does."""
    import mmap

    import torch

    if tensor.device.type != "cpu" or tensor.numel() == 0:
        return tensor.clone()
    buffer = mmap.mmap(-1, tensor.numel() * tensor.element_size())  # the tensor holds a reference to it
    return torch.frombuffer(buffer, dtype=tensor.dtype, count=tensor.numel()).view(tensor.shape).copy_(tensor)


class TokenCounter:
    """Wraps a collator and counts what each batch computes: every position (padding included), the
    real tokens (attention mask), and the sum of squared real lengths per row (attention's FLOPs); per
    batch too, and with `keep` the batches themselves (the bare loop's inputs: benchmarks/bare.py)."""

    def __init__(self, collator, keep: bool = False):
        self.collator, self.keep = collator, keep
        self.reset()

    def reset(self) -> None:
        self.computed = self.real = self.squared = self.rows = 0
        self.per_batch, self.kept = [], []

    def __call__(self, features):
        batch = self.collator(features)
        stats = batch_stats(batch)
        self.per_batch.append(stats)
        if self.keep:
            self.kept.append({key: off_heap(value) if hasattr(value, "numel") else value for key, value in batch.items()})
        self.computed += stats[0]
        self.real += stats[1]
        self.squared += stats[2]
        self.rows += len(features)
        return batch

    def stats(self, prefix: str) -> dict:
        return {f"{prefix}_computed_tokens": self.computed, f"{prefix}_real_tokens": self.real, f"{prefix}_squared_lengths": self.squared}


def padded_batches(lengths: list[int], batch_size: int, sort: bool, batch_tokens: int | None = None) -> dict:
    """What evaluation computes when each batch is padded to its longest: in order, sorted shortest first, or
    in token-budget batches, as ftpipe.inference.batched cuts them."""
    from ftpipe.inference import chunks

    batches = chunks(lengths, batch_size, sort, batch_tokens)
    computed = sum(max(lengths[i] for i in b) * len(b) for b in batches if len(b))
    return {"computed": computed, "real": sum(lengths), "squared": sum(n * n for n in lengths)}


def eval_stats(prefix: str, lengths: list[int], batch_size: int, sort: bool, padded_to: int | None = None,
               batch_tokens: int | None = None) -> dict:
    counted = padded_batches(lengths, batch_size, sort, batch_tokens)
    if padded_to:  # every row padded to the same length beforehand (the tutorial's padding="max_length")
        counted["computed"] = padded_to * len(lengths)
    return {f"{prefix}_computed_tokens": counted["computed"], f"{prefix}_real_tokens": counted["real"],
            f"{prefix}_squared_lengths": counted["squared"]}


class WeightReads:
    """Counts the bytes a generating model reads: all its weights on every forward call, plus the KV
    cache it attends to (2 · layers · kv heads · head dim values per cached token per row)."""

    def __init__(self, model, precision: str):
        core = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = core.config
        self.weight_bytes = sum(p.numel() * p.element_size() for p in core.parameters())  # as stored: 4-bit packed, fp32, ...
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.kv_bytes_per_token = 2 * config.num_hidden_layers * heads * head_dim * BYTES.get(precision, 4)
        self.calls = self.kv_bytes = 0
        self.handle = core.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        self.calls += 1
        cache = kwargs.get("past_key_values")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if cache is not None and ids is not None and hasattr(cache, "get_seq_length"):
            self.kv_bytes += int(cache.get_seq_length()) * ids.shape[0] * self.kv_bytes_per_token

    def stats(self) -> dict:
        self.handle.remove()
        return {"eval_forward_calls": self.calls, "eval_weight_bytes": self.calls * self.weight_bytes, "eval_kv_bytes": self.kv_bytes}


def attention_dims(model_dir: str) -> tuple[int, int]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    return config.num_hidden_layers, config.hidden_size


def _sig(x: float) -> float:
    """Three significant digits: utilizations run from 1e-4 (a tiny model's generation) to 1."""
    return float(f"{x:.3g}")


def paired_ratio(ftpipe_steps: list[float] | None, bare_steps: list[float] | None, resamples: int = 2000, seed: int = 0) -> dict:
    """The bare loop's time over ftpipe's on the same steady steps (the `*_vs_bare` ratio), with a 95% percentile
    bootstrap interval over those steps, and the median of the step-by-step ratios. Step i of both sides
    computed the same batch, so each step is a pair; a step slowed by a neighbour on a shared host moves the
    median little and widens the interval. Empty when the sides did not take the same steps."""
    import numpy as np

    if not ftpipe_steps or not bare_steps or len(ftpipe_steps) != len(bare_steps):
        return {}
    f, b = np.asarray(ftpipe_steps), np.asarray(bare_steps)
    draws = np.random.default_rng(seed).integers(0, len(f), (resamples, len(f)))
    totals = b[draws].sum(1) / f[draws].sum(1)
    return {"low": round(float(np.percentile(totals, 2.5)), 3), "high": round(float(np.percentile(totals, 97.5)), 3),
            "median_step": round(float(np.median(b / f)), 3)}


def utilization(arm: dict, non_embedding: int, layers: int, hidden: int, peaks: dict | None) -> dict:
    """MFU, useful FLOP/s and padding waste of an arm's training and evaluation; for generation, the
    share of the measured bandwidth its weight and KV-cache reads reach."""
    out = {}
    trainable = min(arm.get("trainable_params") or non_embedding, non_embedding)
    train = (4 * non_embedding + 2 * trainable, 12, arm.get("precision", "fp32"))
    forward = (2 * non_embedding, 4, arm.get("eval_precision", "fp32"))
    # train_steady/eval_steady: ftpipe after its warm-up steps; bare_*: the plain loop on the same batches (bare.py)
    phases = [(prefix, f"{prefix}_s", *train) for prefix in ("train", "train_steady", "bare_train")]
    phases += [(prefix, f"{prefix}_s", *forward) for prefix in ("eval_base", "eval_tuned", "eval_steady", "bare_eval")]
    for prefix, seconds_key, per_token, attention, precision in phases:
        real, seconds = arm.get(f"{prefix}_real_tokens"), arm.get(seconds_key)
        if not real or not seconds:
            continue
        flops = per_token * real + attention * layers * hidden * arm[f"{prefix}_squared_lengths"]
        out[f"{prefix}_useful_gflops"] = _sig(flops / seconds / 1e9)
        out[f"{prefix}_padding_waste"] = round(arm[f"{prefix}_computed_tokens"] / real - 1, 3)
        peak = (peaks or {}).get(f"peak_{'bf16' if precision in ('bf16', 'fp16') else 'fp32'}_flops")
        if peak:
            out[f"{prefix}_mfu"] = _sig(flops / seconds / peak)
    for phase in ("train", "eval"):  # ftpipe's steady state over the bare loop's, in useful FLOP/s on the same batches
        if out.get(f"{phase}_steady_useful_gflops") and out.get(f"bare_{phase}_useful_gflops"):
            out[f"{phase}_vs_bare"] = round(out[f"{phase}_steady_useful_gflops"] / out[f"bare_{phase}_useful_gflops"], 3)
            out |= {f"{phase}_vs_bare_{k}": v for k, v in paired_ratio(arm.get(f"{phase}_steady_step_s"), arm.get(f"bare_{phase}_step_s")).items()}
    if arm.get("eval_forward_calls") and arm.get("eval_s"):
        rate = (arm["eval_weight_bytes"] + arm["eval_kv_bytes"]) / arm["eval_s"]
        out["eval_read_gb_per_s"] = _sig(rate / 1e9)
        if (peaks or {}).get("bandwidth_bytes_per_s"):
            out["eval_bandwidth_utilization"] = _sig(rate / peaks["bandwidth_bytes_per_s"])
    return out

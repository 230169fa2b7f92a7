"""Numeric precision of training and evaluation (`train.precision`, `evaluate.precision`).

`auto` is bf16 where the hardware multiplies bf16 natively (Ampere+ GPUs; CPUs with AMX, Xeon
Sapphire Rapids and later), fp16 on older GPUs, fp32 elsewhere: on a CPU without AMX, autocast
emulates bf16 and is slower than fp32. benchmarks/README.md has what each choice measured.
"""

from __future__ import annotations

import contextlib

import torch


def cpu_has_native_bf16() -> bool:
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence the guard
    return bool(probe and probe())


def resolve(precision: str) -> str:
    """`auto` made concrete for this machine; anything else as given."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(precision: str):
    """The context evaluation runs in: mixed precision, or nothing for fp32."""
    resolved = resolve(precision)
    if resolved == "fp32":
        return contextlib.nullcontext()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16 if resolved == "bf16" else torch.float16)

"""Numeric precision of training and evaluation (`train.precision`, `evaluate.precision`).

`int8` (evaluation and prediction only, CPU only) is torch's dynamic quantization: every
`nn.Linear` gets int8 weights, and activations are quantized batch by batch.

`auto` is bf16 where the hardware multiplies bf16 natively (Ampere+ GPUs; CPUs with AMX, Xeon
Sapphire Rapids and later), fp16 on older GPUs, fp32 elsewhere: on a CPU without AMX, autocast
emulates bf16 and is slower than fp32. benchmarks/README.md has what each choice measured.
"""

from __future__ import annotations

import contextlib

import torch


def cpu_has_native_bf16() -> bool:
    """AMX tiles (Sapphire Rapids on) or AVX512-BF16 (Cooper Lake, Zen 4 on): oneDNN multiplies bf16 natively.

    On a 2-core EPYC with AVX512-BF16 and no AMX, bf16 ran a large matmul 2.5x as fast as fp32, trained
    the quickstart 1.38x and evaluated it 2.14x as fast, at accuracy 0.700 against 0.7025 (issue 22).
    Without either, bf16 is emulated and slower than fp32. The probes are private, hence the guards."""
    probes = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(bool(probe and probe()) for probe in probes)


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
    if resolved in ("fp32", "int8"):  # int8: the quantized layers take fp32 activations
        return contextlib.nullcontext()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16 if resolved == "bf16" else torch.float16)


def quantized(model) -> bool:
    """Whether some weights are stored as integers (bitsandbytes' packed 4-bit, torch's int8): no dtype cast applies."""
    return any(not p.is_floating_point() for p in model.parameters())


def for_inference(model, precision: str, decodes: bool = False):
    """The model as evaluation and prediction run it.

    A model that decodes (generates token by token) in bf16 or fp16 is stored in that dtype, adapters
    included: every new token is a forward pass over every weight, which under autocast over fp32 weights
    reads each weight in fp32 and casts it again, and the KV cache keeps the rotated keys in fp32 (RoPE's
    tables follow the fp32 hidden states). Stored in the compute dtype, the weights are read once, at half
    the bytes, and the cache is in it too. It is how a frozen base trains under bf16 (method.frozen_base)
    and how the PEFT recipes generate. A single forward per batch (classification, QA, tagging) keeps
    autocast over fp32 weights: its casts are paid once per batch, and norms and the residual stay fp32.

    For int8 a LoRA-family adapter is merged into
    its base first (one int8 matmul per layer instead of three), then every plain `nn.Linear` is
    quantized in place. torch matches the exact class, so bitsandbytes' 4-bit layers are left alone.

    torch's own dynamic quantization is deprecated in favour of torchao but still in torch 2.13;
    it needs nothing beyond torch, which is why it is the one used here."""
    resolved = resolve(precision)
    if decodes and resolved in ("bf16", "fp16") and not quantized(model):  # a 4-bit base stays as it is
        return model.to(torch.bfloat16 if resolved == "bf16" else torch.float16)
    if resolved != "int8":
        return model
    from ftpipe.core.errors import ConfigError

    if torch.cuda.is_available():
        raise ConfigError("evaluate.precision", "int8 is torch's dynamic quantization, CPU only: use bf16 or fp16 on a GPU")
    from accelerate.utils import extract_model_from_parallel

    # A model trained in this process under bf16 keeps accelerate's autocast wrapper on its forward,
    # which would hand the int8 layers bf16 activations (they take fp32 only).
    model = extract_model_from_parallel(model, keep_fp32_wrapper=False)
    if hasattr(model, "merge_and_unload") and getattr(model, "peft_type", None) is not None:
        try:
            model = model.merge_and_unload()
        except (AttributeError, TypeError, ValueError, NotImplementedError):
            pass  # prompt and prefix tuning have nothing to merge: their base's Linear layers are quantized as they are
    return torch.ao.quantization.quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

"""`precision: auto` follows the hardware: bf16 only where it is native, and evaluation really autocasts."""

from __future__ import annotations

import pytest
import torch

from ftpipe import precision


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16"),
                                                      (False, False, "fp32")])
def test_auto_on_cpu_is_bf16_where_amx_or_avx512_bf16_multiplies_it(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert precision.resolve("auto") == expected
    assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"  # explicit wins


@pytest.mark.parametrize("bf16_gpu, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_gpu_is_bf16_or_fp16(monkeypatch, bf16_gpu, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16_gpu)
    assert precision.resolve("auto") == expected


def test_autocast_computes_in_the_resolved_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    layer, x = torch.nn.Linear(4, 4), torch.ones(2, 4)
    with precision.autocast("fp32"):
        assert layer(x).dtype == torch.float32
    with precision.autocast("bf16"):
        assert layer(x).dtype == torch.bfloat16

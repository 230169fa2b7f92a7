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


def tiny_classifier():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, num_labels=5)
    return BertForSequenceClassification(config).eval()


def test_int8_quantizes_every_linear_layer_and_keeps_the_outputs_close(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, ids = tiny_classifier(), torch.randint(0, 100, (8, 12))
    with torch.no_grad():
        before = model(ids).logits
    assert precision.for_inference(model, "fp32") is model and precision.for_inference(model, "auto") is model
    quantized = precision.for_inference(model, "int8")
    assert not [n for n, m in quantized.named_modules() if type(m) is torch.nn.Linear]  # classifier included
    with torch.no_grad(), precision.autocast("int8"):
        after = quantized(ids).logits
    assert after.dtype == torch.float32 and not torch.equal(after, before)  # really quantized, and fp32 out
    assert torch.allclose(after, before, atol=0.1), (after - before).abs().max()


def test_int8_merges_a_lora_adapter_before_quantizing(monkeypatch):
    from peft import LoraConfig, get_peft_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = get_peft_model(tiny_classifier(), LoraConfig(r=4, target_modules=["query", "value"], task_type="SEQ_CLS"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # a trained adapter: B is no longer zero
    ids = torch.randint(0, 100, (8, 12))
    with torch.no_grad():
        before = model(ids).logits
    quantized = precision.for_inference(model, "int8")
    assert not [n for n, _ in quantized.named_modules() if "lora_" in n]  # merged: one int8 matmul per layer
    with torch.no_grad():
        assert torch.allclose(quantized(ids).logits, before, atol=0.1)


def test_int8_is_for_evaluation_on_a_cpu_only(monkeypatch):
    from ftpipe.core.config import EvaluateConfig, TrainConfig
    from ftpipe.core.errors import ConfigError

    assert EvaluateConfig(precision="int8").precision == "int8"
    with pytest.raises(ConfigError, match="train.precision"):
        TrainConfig(precision="int8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="CPU only"):
        precision.for_inference(tiny_classifier(), "int8")


def test_int8_takes_a_model_trained_under_bf16_autocast_in_this_process(monkeypatch):
    """accelerate leaves an autocast wrapper on a trained model's forward (the benchmark evaluates in memory)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    AcceleratorState._reset_state(True)  # accelerate's state is process-wide: other tests set their own
    try:
        model = Accelerator(cpu=True, mixed_precision="bf16").prepare(tiny_classifier())
    finally:
        AcceleratorState._reset_state(True)
    quantized = precision.for_inference(model, "int8")
    with torch.no_grad():
        assert quantized(torch.randint(0, 100, (2, 6))).logits.dtype == torch.float32


def test_a_decoding_model_generates_from_weights_and_a_cache_in_the_compute_dtype(monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, tie_word_embeddings=True)
    ids = torch.randint(0, 64, (2, 5))
    autocast_model = LlamaForCausalLM(config).eval()
    with torch.inference_mode(), precision.autocast("bf16"):
        autocast_keys = autocast_model(ids, use_cache=True).past_key_values.layers[0].keys
    assert autocast_keys.dtype == torch.float32  # autocast over fp32 weights: the rotated keys are promoted back to fp32
    assert precision.for_inference(autocast_model, "bf16") is autocast_model  # not decoding: autocast, weights as they are
    assert {p.dtype for p in autocast_model.parameters()} == {torch.float32}
    model = precision.for_inference(autocast_model, "bf16", decodes=True)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.inference_mode(), precision.autocast("bf16"):
        cache = model(ids, use_cache=True).past_key_values.layers[0]
        generated = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert cache.keys.dtype == cache.values.dtype == torch.bfloat16 and generated.shape == (2, 8)
    assert precision.for_inference(LlamaForCausalLM(config), "fp32", decodes=True).dtype == torch.float32

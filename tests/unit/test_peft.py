"""LoRA / QLoRA / generic peft methods on tiny models: targets, what trains, 4-bit base, merging, reloading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import train_record
import torch

from ftpipe.core.config import ModelConfig

from ftpipe.params import validate

from ftpipe.core.errors import ConfigError
from ftpipe.methods import get_method, load_tuned
from ftpipe.models.loading import load_tokenizer
from ftpipe.models.sources import build_tiny
from ftpipe.tasks import get_task

LLAMA = {"model_type": "llama", "vocab_size": 800, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 256, "tie_word_embeddings": False}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny_llama") / "base"
    build_tiny(LLAMA, path)
    return path


def task_for(kind: str):
    raw = {"name": "dialogsum", "type": "summarization"} if kind == "summarization" else \
        {"name": "reviews", "type": "classification", "labels": ["neg", "pos"]}
    return get_task(validate({"task": raw}, ("task",)).task)


def method(name: str, **peft):
    quantization = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                    "bnb_4bit_compute_dtype": "auto", "llm_int8_skip_modules": ["lm_head", "score", "classifier"]}
    settings = {"peft_type": "LORA"} if name in ("lora", "qlora") else {}
    raw = {"name": name, "type": "peft", "peft": {**settings, "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, **peft}}
    if name == "qlora":
        raw["quantization"] = quantization
    return validate({"method": raw}, ("method",)).method


def build(base_dir, name="lora", kind="summarization", targets=TARGETS, **peft):
    task = task_for(kind)
    tokenizer = load_tokenizer(base_dir, task)
    torch.manual_seed(0)
    model = get_method(method(name, **peft)).build(task, base_dir, tokenizer, ModelConfig(name="tiny_llama", source="tiny", lora_target_modules=targets))
    return task, tokenizer, model


def batch(tokenizer, task=None):
    ids = tokenizer(["#Person1#: Hello, how are you? Output: fine"], return_tensors="pt")["input_ids"]
    return {"input_ids": ids, "labels": ids if task is None else torch.tensor([1])}


def train_steps(model, inputs, steps=3):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return loss


def test_wrong_targets_fail_listing_the_linear_layers(base_dir):
    with pytest.raises(ConfigError, match="model.lora_target_modules") as err:
        build(base_dir, targets=["c_attn", "query"])
    assert "q_proj" in str(err.value) and "down_proj" in str(err.value)


def test_lora_trains_only_adapter_weights(base_dir):
    _, tokenizer, model = build(base_dir)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, batch(tokenizer))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable


def test_lora_for_classification_keeps_the_head_trainable(base_dir):
    _, _, model = build(base_dir, kind="classification", targets=["all-linear"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("score" in n for n in trainable) and any("lora_" in n for n in trainable)


def test_qlora_quantizes_the_base_and_trains_on_cpu(base_dir):
    import bitsandbytes as bnb

    _, tokenizer, model = build(base_dir, "qlora")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert not isinstance(model.get_base_model().lm_head, bnb.nn.Linear4bit)  # skipped: stays full precision
    inputs = batch(tokenizer)
    first = model(**inputs).loss.item()
    last = train_steps(model, inputs, steps=5).item()
    assert last < first
    # Evaluated as trained, on the 4-bit base: the tiny model's 32-wide layers are narrower than a
    # quantization block, which bitsandbytes' AVX512-BF16 repacking cannot take (the CPU CI runs on).
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).loss)


def test_generic_peft_method_needs_a_peft_type(base_dir):
    with pytest.raises(ConfigError, match="peft_type"):
        build(base_dir, "peft")
    _, _, model = build(base_dir, "peft", peft_type="LORA")
    assert any("lora_" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize("name", ["lora", "qlora"])
def test_saved_adapter_reloads_and_merges_to_the_same_logits(base_dir, tmp_path, name):
    from ftpipe.tools.merge import merge

    task, tokenizer, model = build(base_dir, name, init_lora_weights=False)  # non-zero B: the adapter matters
    adapter = tmp_path / "tuned"
    model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    (adapter / "ftpipe_train.json").write_text(json.dumps(train_record(method={"name": name, "type": "peft"})))
    assert not list(adapter.glob("model.safetensors"))  # only the adapter is saved

    inputs = {"input_ids": batch(tokenizer)["input_ids"]}
    tuned = load_tuned(task, adapter, base_dir, tokenizer).eval()
    plain = task.model_class.from_pretrained(base_dir).eval()
    with torch.no_grad():
        adapted, base = tuned(**inputs).logits, plain(**inputs).logits
    assert not torch.allclose(adapted, base, atol=1e-4)

    merge(task, adapter, base_dir, tmp_path / "merged")
    merged = task.model_class.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, adapted, atol=1e-4, rtol=1e-4)



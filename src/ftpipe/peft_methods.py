"""PEFT methods: LoRA, QLoRA (LoRA on a 4-bit NF4 base) and any other peft config.

`method.peft` holds the peft config's kwargs; `target_modules: null` takes the model family's
`model.lora_target_modules`. Targets that wrap no module fail here, naming the model's linear
layers, instead of peft training nothing useful. `method.quantization` holds BitsAndBytesConfig
kwargs (qlora). The task head stays trainable: peft's task type (SEQ_CLS) saves it with the adapter.
"""

from __future__ import annotations

import logging

import torch

from ftpipe.errors import ConfigError
from ftpipe.models import load_for_task

log = logging.getLogger(__name__)


def build_peft_model(task, base_dir, tokenizer, model_cfg, method_cfg):
    """The base model (4-bit when `method.quantization` is set) wrapped with the configured adapter."""
    from peft import get_peft_model

    quantized = bool(method_cfg.quantization)
    kwargs = quantization_kwargs(method_cfg.quantization) if quantized else {}
    model = load_for_task(task, base_dir, tokenizer, **kwargs)
    if quantized:
        from peft import prepare_model_for_kbit_training

        # Casts norms/head to fp32 and freezes the 4-bit base; checkpointing is the Trainer's call.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = peft_config(task, model, model_cfg, method_cfg)
    model = get_peft_model(model, config)
    model.enable_input_require_grads()  # so gradient checkpointing works with a frozen embedding
    return model


def quantization_kwargs(settings: dict) -> dict:
    """from_pretrained kwargs for a bitsandbytes-quantized base."""
    from transformers import BitsAndBytesConfig

    settings = dict(settings)
    dtype = settings.get("bnb_4bit_compute_dtype", "auto")
    if dtype == "auto":  # bf16 where the GPU has it; fp32 on a CPU, where bf16 matmuls are slow
        dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    settings["bnb_4bit_compute_dtype"] = getattr(torch, dtype)
    # On a CPU everything stays on the CPU; fresh task heads are kept out of quantization
    # through llm_int8_skip_modules (set in conf/method/qlora.yaml).
    device_map = {"": 0} if torch.cuda.is_available() else "cpu"
    return {"quantization_config": BitsAndBytesConfig(**settings), "device_map": device_map}


def peft_config(task, model, model_cfg, method_cfg):
    from peft import LoraConfig, get_peft_config

    settings = dict(method_cfg.peft)
    settings.setdefault("task_type", task.peft_task_type)
    if method_cfg.name in ("lora", "qlora") or settings.get("peft_type", "LORA") == "LORA":
        if not settings.get("target_modules"):
            settings["target_modules"] = list(model_cfg.lora_target_modules)
        settings["target_modules"] = check_targets(model, settings["target_modules"])
    if method_cfg.name in ("lora", "qlora"):
        settings.pop("peft_type", None)
        try:
            return LoraConfig(**settings)
        except TypeError as err:
            raise ConfigError("method.peft", str(err)) from None
    if "peft_type" not in settings:
        raise ConfigError("method.peft.peft_type", "required for method 'peft' (LORA, IA3, ...)")
    return get_peft_config(settings)


def linear_names(model) -> list[str]:
    """Distinct short names of the model's linear layers (nn.Linear, bnb Linear4bit, GPT-2's Conv1D)."""
    from transformers.pytorch_utils import Conv1D

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, (torch.nn.Linear, Conv1D))}
    return sorted(names)


def check_targets(model, targets):
    """`all-linear` as peft spells it, or a list that must match at least one module."""
    targets = [targets] if isinstance(targets, str) else list(targets)
    if targets == ["all-linear"]:
        return "all-linear"
    module_names = [name for name, _ in model.named_modules()]
    hits = [t for t in targets if any(name == t or name.endswith("." + t) for name in module_names)]
    if not hits:
        raise ConfigError("model.lora_target_modules",
                          f"{targets} match no module of {type(model).__name__}; its linear layers are: "
                          f"{', '.join(linear_names(model))} (or use all-linear)")
    missing = sorted(set(targets) - set(hits))
    if missing:
        log.warning("LoRA targets %s match nothing in %s (ignored)", missing, type(model).__name__)
    return targets

"""Fine-tuning methods: which weights train, and how the base model is loaded for them.

full: everything trains. freeze: only the task head and the top `train_top_layers` layers.
lora / qlora / peft: a peft adapter (qlora on a 4-bit base); the head stays trainable.
"""

from __future__ import annotations

import logging

import torch

from ftpipe.errors import ConfigError
from ftpipe.models import load_for_task

log = logging.getLogger(__name__)


def build_model(task, base_dir, tokenizer, model_cfg, method_cfg):
    """Load the base model with the task head and apply the method to it."""
    if method_cfg.name in ("full", "freeze"):
        model = load_for_task(task, base_dir, tokenizer)
        if method_cfg.name == "freeze":
            freeze(model, method_cfg.train_top_layers)
    else:
        from ftpipe.peft_methods import build_peft_model

        model = build_peft_model(task, base_dir, tokenizer, model_cfg, method_cfg)
    log_trainable(model)
    return model


def freeze(model, train_top_layers: int) -> None:
    """Freeze the pretrained body; keep the head and the top N transformer layers trainable."""
    body = model.base_model
    for param in body.parameters():
        param.requires_grad = False
    pooler = getattr(body, "pooler", None)  # BERT's pooler feeds the head: it belongs with it
    for param in pooler.parameters() if pooler is not None else ():
        param.requires_grad = True
    if train_top_layers:
        layers = _layer_list(model)
        if train_top_layers > len(layers):
            raise ConfigError("method.train_top_layers", f"the model has only {len(layers)} layers")
        for layer in layers[-train_top_layers:]:
            for param in layer.parameters():
                param.requires_grad = True


def _layer_list(model) -> torch.nn.ModuleList:
    """The stack of transformer blocks: the ModuleList as long as config.num_hidden_layers."""
    n = model.config.num_hidden_layers
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ConfigError("method.train_top_layers", f"cannot find the layer stack of {type(model).__name__}")


def log_trainable(model) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / max(total, 1))
    return {"trainable_params": trainable, "total_params": total, "trainable_fraction": trainable / max(total, 1)}

"""Freeze the pretrained body; the task head (and BERT's pooler, which feeds it) and the top N layers train."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ftpipe.core.errors import check
from ftpipe.core.errors import ConfigError
from ftpipe.methods.base import Method as BaseMethod
from ftpipe.methods.base import MethodConfig


@dataclass
class Config(MethodConfig):
    type: str = "freeze"
    train_top_layers: int = 0  # transformer layers kept trainable below the head

    def __post_init__(self):
        check("method.train_top_layers", self.train_top_layers >= 0, "must be >= 0")


class Method(BaseMethod):
    def build(self, task, base_dir, tokenizer, model_cfg, run=None):
        model = super().build(task, base_dir, tokenizer, model_cfg, run)
        freeze(model, self.cfg.train_top_layers)
        return model


def freeze(model, train_top_layers: int) -> None:
    body = model.base_model
    for param in body.parameters():
        param.requires_grad = False
    pooler = getattr(body, "pooler", None)
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

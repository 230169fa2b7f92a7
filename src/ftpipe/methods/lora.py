"""LoRA: low-rank adapters on the model family's target modules (peft's LoraConfig kwargs in `method.peft`)."""

from __future__ import annotations

from dataclasses import dataclass

from ftpipe.methods import peft


@dataclass
class Config(peft.Config):
    type: str = "lora"

    def __post_init__(self):
        self.peft = {**self.peft, "peft_type": "LORA"}
        super().__post_init__()


class Method(peft.Method):
    pass

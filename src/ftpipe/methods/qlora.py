"""QLoRA: LoRA on a base loaded in 4-bit NF4 (bitsandbytes); `method.quantization` is required."""

from __future__ import annotations

from dataclasses import dataclass

from ftpipe.config import _check
from ftpipe.methods import lora


@dataclass
class Config(lora.Config):
    type: str = "qlora"

    def __post_init__(self):
        super().__post_init__()
        _check("method.quantization", bool(self.quantization), "BitsAndBytesConfig settings are required for qlora (load_in_4bit, ...)")


class Method(lora.Method):
    pass

"""Full fine-tuning: every weight trains (the Trainer loop of methods/base.py, unchanged)."""

from __future__ import annotations

from dataclasses import dataclass

from ftpipe.methods.base import Method as BaseMethod
from ftpipe.methods.base import MethodConfig


@dataclass
class Config(MethodConfig):
    pass


class Method(BaseMethod):
    pass

"""`merge`: fold a PEFT adapter into its base and save a plain model (no peft needed to load it).

The base is always reloaded in full precision first (load_tuned never quantizes), so a QLoRA
adapter is merged into 32-bit weights, never into 4-bit ones: the merged model computes what
the adapter on that base computes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ftpipe.errors import ConfigError
from ftpipe.io import atomic_output
from ftpipe.models import load_tokenizer, load_tuned

log = logging.getLogger(__name__)


def merge(task, adapter_dir: Path, out_dir: Path) -> None:
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise ConfigError("method.name", f"{adapter_dir} holds no PEFT adapter: only lora/qlora/peft runs can be merged")
    tokenizer = load_tokenizer(adapter_dir, task)
    model = load_tuned(task, adapter_dir, tokenizer).merge_and_unload()
    with atomic_output(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        info = json.loads((adapter_dir / "ftpipe_train.json").read_text())
        (tmp / "ftpipe_merge.json").write_text(json.dumps({"adapter": str(adapter_dir), "base_model": info["base_model"]}, indent=2))
    log.info("merged model in %s", out_dir)

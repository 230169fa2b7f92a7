"""`merge`: fold a PEFT adapter into its base and save a plain model (no peft needed to load it).

The base is always reloaded in full precision first (load_tuned never quantizes), so a QLoRA
adapter is merged into 32-bit weights, never into 4-bit ones: the merged model computes what
the adapter on that base computes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ftpipe.core.errors import ConfigError
from ftpipe.core.io import atomic_output
from ftpipe.core.records import TrainRecord
from ftpipe.methods import load_tuned
from ftpipe.models.loading import load_tokenizer

log = logging.getLogger(__name__)


def merge(task, adapter_dir: Path, base_dir: Path, out_dir: Path, trust_remote_code: bool = False) -> None:
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise ConfigError("method.name", f"{adapter_dir} holds no PEFT adapter: only lora/qlora/peft runs can be merged")
    tokenizer = load_tokenizer(adapter_dir, task, trust_remote_code=trust_remote_code)
    model = load_tuned(task, adapter_dir, base_dir, tokenizer, trust_remote_code).merge_and_unload()
    with atomic_output(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        # The base's identity travels on; the merged model loads as a complete one (type full).
        made = TrainRecord.load(adapter_dir, missing_ok=True)
        if made is not None:
            made.method = {**made.method, "type": "full", "merged_from": made.method.get("type")}
            made.save(tmp)
    log.info("merged model in %s", out_dir)

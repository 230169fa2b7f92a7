"""Silence, once and in one place, the warnings and progress bars a user cannot act on.

Imported by ftpipe.core.offline, which every stage after `download` imports first, and by the export
stage. Each entry below is a message ftpipe expects on every run and says why; anything else,
an unexpected warning included, still shows.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

from ftpipe.core import progress

# --- warnings ------------------------------------------------------------------------------------
# The Trainer asks torch's DataLoader for pinned memory, which only a GPU uses; on a CPU torch warns
# once per epoch.
warnings.filterwarnings("ignore", message=r".*'pin_memory' argument is set as true but no accelerator", category=UserWarning)
# peft's PEFT methods call transformers' `is_gradient_checkpointing`, which transformers v5 renamed;
# peft's own deprecations likewise: both are for peft's maintainers, not for users of a pipeline.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
for _category in (DeprecationWarning, FutureWarning):
    warnings.filterwarnings("ignore", category=_category, module=r"peft(\.|$)")
# get_peft_model replaces the base id that methods/peft.py gives the adapter with the folder it
# loaded (models/base); card.py writes the real id back into adapter_config.json.
warnings.filterwarnings("ignore", message=r"The PEFT config's `base_model_name_or_path` was renamed", category=UserWarning)
# evaluate.precision=int8 is torch's dynamic quantization, deprecated by torch for torchao (why it is
# still the one used: ftpipe/precision.py). The notice is about that choice, not about the user's run.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation",
                        category=UserWarning)
warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)

# --- log records ---------------------------------------------------------------------------------
FRESH_HEADS: set[str] = set()  # weight names of the heads of the tasks in use (expect_fresh_heads)
PRETRAINING_KEYS = ("cls.", "lm_head.", "pooler.")  # pretraining heads a task model drops


class FreshHeadReport(logging.Filter):
    """transformers' LOAD REPORT when it lists only a fresh task head (MISSING) and dropped
    pretraining heads (UNEXPECTED): what loading a base for a new task means. A report naming any
    other key (a missing encoder weight, a size mismatch) still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        rows = [[cell.strip() for cell in re.sub(r"\x1b\[[0-9;]*m", "", line).split("|")]
                for line in message.splitlines() if "|" in line and not line.startswith(("Key", "-"))]
        expected = {"MISSING": tuple(FRESH_HEADS), "UNEXPECTED": PRETRAINING_KEYS}
        return not rows or not all(len(r) > 1 and r[0].startswith(expected.get(r[1], ("\0",))) for r in rows)


def expect_fresh_heads(keys) -> None:
    """A task's head is about to load onto a base that lacks it (ftpipe.models.loading)."""
    FRESH_HEADS.update(keys)


class Drop(logging.Filter):
    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


logging.getLogger("transformers.modeling_utils").addFilter(FreshHeadReport())
# DeepSpeed (imported by accelerate when installed) says on every CPU run that it found no GPU.
logging.getLogger("DeepSpeed").addFilter(Drop(r"Setting accelerator to CPU"))

# --- progress bars -------------------------------------------------------------------------------
if progress.mode() != "bar":
    # transformers' bars (loading weights, writing shards) take a moment; in a log they are only
    # carriage-return noise. Read by huggingface_hub on import, hence here, before datasets.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# datasets' bookkeeping bars (building parquet, flattening indices, reading files) say nothing about
# the work; its `map` bar (tokenization) and the rest follow FTPIPE_PROGRESS like ftpipe's own bars.
QUIET_BARS = ("Creating ", "Flattening the indices", "Generating ", "Loading ", "Resolving data files")

import datasets  # noqa: E402,F401  (after the variable above; ftpipe.core.offline has set its own already)

_datasets_tqdm = getattr(sys.modules.get("datasets.utils.tqdm"), "tqdm", None)
if isinstance(_datasets_tqdm, type) and not getattr(_datasets_tqdm, "_ftpipe_follows", False):
    progress.follow_setting(_datasets_tqdm, quiet=QUIET_BARS)
    _datasets_tqdm._ftpipe_follows = True  # once, even if this module is reloaded

"""Dialogue summarization with a causal LM (DialogSum): prompt -> summary, scored with ROUGE.

Training rows are `prompt + summary + eos` with the prompt (and padding) masked to -100, so only
the summary is learned. Over-long dialogues lose tokens from `truncation_side`; the summary is
cut (and counted) only where it would leave the dialogue fewer than `min_dialogue_tokens`.
Evaluation rows hold the prompt alone and are completed by batched, left-padded generation;
several reference summaries (DialogSum test: summary1..3) are scored by their max.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ftpipe.core.errors import check
from ftpipe.tasks.base import Task as BaseTask
from ftpipe.tasks.base import TaskConfig
from ftpipe.tasks.summarization.features import IGNORE, PadCollator

from ftpipe.tasks.summarization.data import Data
from ftpipe.tasks.summarization.features import Features
from ftpipe.tasks.summarization.inference import Inference
from ftpipe.tasks.summarization.report import PLOTS, Report

__all__ = ["Config", "Task", "PLOTS", "IGNORE", "PadCollator"]


@dataclass
class Config(TaskConfig):
    max_length: int = 512  # prompt + summary tokens per training row
    dialogue_field: str = "dialogue"
    # Reference summaries: the fields present in a record, in this order; the first one trains.
    summary_fields: list[str] = field(default_factory=lambda: ["summary", "summary1", "summary2", "summary3"])
    prompt: str = "Instruct: Summarize the following conversation.\n{dialogue}\nOutput:\n"
    chat_template: bool = False  # wrap the prompt as a user turn with the tokenizer's chat template
    truncation_side: str = "right"  # which end of an over-long dialogue loses tokens
    # Dialogue tokens a long summary cannot take away (a shorter dialogue keeps all); null: max_length // 4.
    min_dialogue_tokens: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
        check("task.prompt", self.prompt.count("{dialogue}") == 1, "must contain {dialogue} exactly once")
        check("task.truncation_side", self.truncation_side in ("left", "right"), "left or right")
        check("task.summary_fields", bool(self.summary_fields), "name at least one summary field")
        if self.min_dialogue_tokens is None:
            self.min_dialogue_tokens = max(self.max_length // 4, 1)
        check("task.min_dialogue_tokens", self.min_dialogue_tokens >= 1, f"must be >= 1 or null, got {self.min_dialogue_tokens}")


class Task(Data, Features, Inference, Report, BaseTask):
    """The plug-in, by phase: dialogues and references cleaned (data), prompt and summary as causal-LM rows
    with the prompt masked (features), greedy generation (inference), ROUGE, plots and the card's example (report)."""

    capabilities = frozenset({"causal_lm", "position_free_labels"})
    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    input_fields = ("dialogue",)
    hub_pipeline_tag = "text-generation"  # a causal LM: text-generation is the pipeline that runs it
    hub_metrics = ("rouge",)
    headline_metric = "rougeL"  # the longest common subsequence: credits a summary's order too
    packs = True  # prompt + summary + eos rows, the prompt labelled -100: train.packing flattens them
    decodes = True  # the summary is generated

"""Chat: supervised fine-tuning on conversations, with the model's own chat template, the loss on the
assistant's turns only.

Inputs: OpenAI-style `messages`, ShareGPT `conversations` or Alpaca records (formats.py), in JSON, JSONL or
Parquet (CSV cells holding JSON lists too). Each conversation is rendered with the base's chat template
(`tokenizer.apply_chat_template`), or the one `task.chat_template` names or spells, which is then written
into the tuned model's tokenizer. Every token but an assistant's words and their end-of-turn marker is
labelled -100 (templates.py finds them in the rendered text). Evaluation generates each conversation's last
assistant turn from the turns before it and scores it against the reference: token F1 (the headline),
ROUGE-L, exact match, and the perplexity of the reference turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ftpipe.core.errors import check
from ftpipe.tasks.base import Task as BaseTask
from ftpipe.tasks.base import TaskConfig
from ftpipe.tasks.chat.data import Data
from ftpipe.tasks.chat.features import IGNORE, Features, PadCollator
from ftpipe.tasks.chat.inference import Inference
from ftpipe.tasks.chat.report import PLOTS, Report
from ftpipe.tasks.chat.synthetic import conversations as synthetic_conversations
from ftpipe.tasks.chat.templates import NAMED, resolve

__all__ = ["Config", "Task", "PLOTS", "SYNTHETIC", "IGNORE", "PadCollator"]


@dataclass
class Config(TaskConfig):
    max_length: int = 512  # tokens per conversation: longer ones lose their oldest exchanges first
    messages_field: str = "messages"  # OpenAI-style turns: [{role, content}]
    conversations_field: str = "conversations"  # ShareGPT turns: [{from, value}]
    references_field: str = "references"  # optional: more reference answers for the last turn (scored by the best)
    # null: the base's own template; a name (chatml, zephyr) or a Jinja template, for a base without one
    chat_template: Optional[str] = None
    train_on: str = "all_assistant"  # which assistant turns the loss sees: all_assistant | last_assistant
    consecutive_turns: str = "merge"  # two turns of one role in a row: merge (joined, counted) | error

    def __post_init__(self):
        super().__post_init__()
        check("task.train_on", self.train_on in ("all_assistant", "last_assistant"), f"all_assistant or last_assistant, got {self.train_on!r}")
        check("task.consecutive_turns", self.consecutive_turns in ("merge", "error"), f"merge or error, got {self.consecutive_turns!r}")
        check("task.chat_template", self.chat_template is None or self.chat_template in NAMED or "{" in self.chat_template,
              f"{self.chat_template!r} is neither a named template ({', '.join(NAMED)}) nor a Jinja template")


class Task(Data, Features, Inference, Report, BaseTask):
    """The plug-in, by phase: conversations read in three formats and checked (data), rendered with the chat template
    and masked but for the assistant's words (features), the last turn generated and its reference's likelihood
    (inference), token F1, ROUGE-L, exact match and perplexity, plots and the card's example (report)."""

    capabilities = frozenset({"causal_lm", "position_free_labels"})
    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    input_fields = ("messages",)
    hub_pipeline_tag = "text-generation"
    hub_metrics = ("f1", "rouge", "exact_match", "perplexity")
    headline_metric = "token_f1"
    score_scale = "token F1, ROUGE-L and exact match are fractions in [0, 1]; perplexity is exp(mean negative log-likelihood), lower is better"
    packs = True  # rendered conversations, all but the assistant's words labelled -100: train.packing flattens them
    converses = True
    decodes = True  # the last assistant turn is generated

    def prepare(self, tokenizer, model=None):
        # The template formats every stage's conversations and travels in the tuned tokenizer (saved by train).
        tokenizer.chat_template = resolve(self.cfg.chat_template, tokenizer)
        super().prepare(tokenizer, model)


SYNTHETIC = {"conversations": synthetic_conversations}  # data.synthetic.kind: conversations

"""Single-label text classification (Yelp stars, tweet sentiment, synthetic reviews).

Works with encoders (BERT) and with decoders used as classifiers (GPT-2, SmolLM2): those pool the
last non-pad token, so the pad token must be set and known to the model config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftpipe.core.errors import check
from ftpipe.tasks.base import Task as BaseTask
from ftpipe.tasks.base import TaskConfig
from ftpipe.tasks.classification.data import Data
from ftpipe.tasks.classification.features import Features
from ftpipe.tasks.classification.inference import Inference
from ftpipe.tasks.classification.report import PLOTS, Report

__all__ = ["Config", "Task", "PLOTS"]


@dataclass
class Config(TaskConfig):
    text_field: str = "text"
    label_field: str = "label"
    labels: list[str] = field(default_factory=list)  # class names, in class-id order
    label_aliases: dict[str, int] = field(default_factory=dict)  # other spellings -> class id
    unescape_newlines: bool = False  # Yelp stores line breaks as a literal backslash-n

    def __post_init__(self):
        super().__post_init__()
        check("task.labels", len(self.labels) >= 2, "list at least two class names")
        seen: dict[str, str] = {}
        for name in self.labels:  # label_id matches names ignoring case: "Pos" and "pos" would be one class
            first = seen.get(str(name).lower())
            check("task.labels", first is None, f"class name '{name}' is listed twice"
                  + (f" (as '{first}': labels match ignoring case)" if first != name else ""))
            seen[str(name).lower()] = name
        for alias, idx in self.label_aliases.items():
            check(f"task.label_aliases.{alias}", 0 <= idx < len(self.labels), f"class id {idx} out of range")


class Task(Data, Features, Inference, Report, BaseTask):
    """The plug-in, by phase: records cleaned and labels resolved (data), texts to input ids (features),
    class probabilities (inference), accuracy and F1, plots and the card's example (report)."""

    capabilities = frozenset({"example_label", "position_free_labels"})
    auto_class = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    input_fields = ("text",)
    stratify_column = "labels"
    head_keys = ("classifier.", "pre_classifier.", "score.")
    hub_pipeline_tag = "text-classification"
    hub_metrics = ("accuracy", "f1")

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.names = {name.lower(): idx for idx, name in enumerate(cfg.labels)}
        self.names.update({alias.lower(): idx for alias, idx in cfg.label_aliases.items()})

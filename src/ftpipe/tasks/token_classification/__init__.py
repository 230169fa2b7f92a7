"""Token classification: named entities and tagged spans, scored by entity-level F1 (seqeval's rules).

Inputs: CoNLL-style column files (.conll, .iob, .txt: token first, label last, a blank line between
sentences), or records (CSV, JSON, JSONL, Parquet) with a list of tokens and a list of tags, the
tags as names or ids. Tags in IOB2, IOB1 or BIOES (`task.scheme`) are stored as IOB2 ids: O, then
B- and I- per type of `task.labels`.

Tokenize joins a sentence's words with spaces and labels the first sub-token of each word (the
rest are ignored, or labelled too with `label_all_tokens`), with word-piece encoders and byte-level
BPE decoders alike: sub-tokens are tied to words by their character offsets. A sentence longer
than `max_length` becomes windows overlapping by `stride` tokens; evaluation takes each word's tag
from the window where it has the most context on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ftpipe.core.errors import check
from ftpipe.tasks.base import Task as BaseTask
from ftpipe.tasks.base import TaskConfig
from ftpipe.tasks.token_classification.conll import SUFFIXES
from ftpipe.tasks.token_classification.data import Data
from ftpipe.tasks.token_classification.features import Features
from ftpipe.tasks.token_classification.inference import Inference
from ftpipe.tasks.token_classification.report import PLOTS, Report
from ftpipe.tasks.token_classification.synthetic import entities as synthetic_entities
from ftpipe.tasks.token_classification.tags import SCHEMES, tag_names

__all__ = ["Config", "Task", "PLOTS", "SYNTHETIC"]


@dataclass
class Config(TaskConfig):
    max_length: int = 128  # tokens per window
    labels: list[str] = field(default_factory=list)  # entity types; the tags are O, B-<type> and I-<type>
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    text_field: str = "text"  # raw text to predict on (ftpipe-predict --text): split into words first
    scheme: str = "iob2"  # the input's tags: iob2 | iob1 | bioes
    repair_tags: bool = False  # IOB2: an I- tag that starts an entity becomes B- (counted) instead of an error
    label_all_tokens: bool = False  # also train on a word's later sub-tokens (as I-), not only its first
    stride: int = 32  # tokens shared by consecutive windows of a long sentence
    mode: str = "default"  # entity rules for the metrics and predicted entities: default | strict

    def __post_init__(self):
        super().__post_init__()
        check("task.labels", len(self.labels) >= 1, "list at least one entity type")
        check("task.labels", len(set(self.labels)) == len(self.labels), "lists an entity type twice")
        for name in self.labels:
            check("task.labels", isinstance(name, str) and bool(re.fullmatch(r"(?![BIESO]-)[^\s]+", name)) and name != "O",
                  f"{name!r} is not an entity type (a name without spaces, not O, no B-/I- prefix)")
        check("task.scheme", self.scheme in SCHEMES, f"unknown scheme '{self.scheme}' ({', '.join(SCHEMES)})")
        check("task.mode", self.mode in ("default", "strict"), f"unknown mode '{self.mode}' (default or strict)")
        check("task.stride", 0 <= self.stride <= self.max_length // 2, f"must be in 0..{self.max_length // 2} (half of task.max_length)")


class Task(Data, Features, Inference, Report, BaseTask):
    """The plug-in, by phase: CoNLL files and tag records read and checked (data), words to sub-token
    windows and labels (features), a tag per word from its best window (inference), entity-level scores,
    plots and the card's example (report)."""

    auto_class = "AutoModelForTokenClassification"
    peft_task_type = "TOKEN_CLS"
    input_fields = ("tokens",)
    group_column = "example_id"  # a long sentence's windows
    head_keys = ("classifier.", "score.")
    hub_pipeline_tag = "token-classification"
    hub_metrics = ("seqeval",)
    file_suffixes = (*BaseTask.file_suffixes, *SUFFIXES)  # CoNLL-style files too (read_conll)

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.tags = tag_names(cfg.labels)
        self.ids = {tag: i for i, tag in enumerate(self.tags)}


SYNTHETIC = {"entities": synthetic_entities}  # data.synthetic.kind: entities

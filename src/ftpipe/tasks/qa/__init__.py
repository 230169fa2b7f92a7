"""Extractive question answering (SQuAD v1.1/v2.0 and files in the same shape).

Inputs: SQuAD nested JSON (data -> paragraphs -> qas -> answers, every article and paragraph),
or flat CSV/JSON/JSONL records with context, question and answers. Fields that annotation tools
add (answer ids, document ids, answer_end, categories) are ignored. `is_impossible` or an empty
answer list marks an unanswerable (v2) question; v1 (task.version_2=false) refuses both.

Preprocess checks each answer_start against its text and repairs it to the nearest occurrence
(counted); long contexts become overlapping windows (max_length / doc_stride) at tokenize, and
evaluation searches the n-best spans over all windows of a question (qa/postprocess.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ftpipe.core.errors import check
from ftpipe.tasks.base import Task as BaseTask
from ftpipe.tasks.base import TaskConfig
from ftpipe.tasks.qa.data import Data
from ftpipe.tasks.qa.features import Features
from ftpipe.tasks.qa.inference import Inference
from ftpipe.tasks.qa.report import PLOTS, Report

__all__ = ["Config", "Task", "PLOTS"]


@dataclass
class Config(TaskConfig):
    max_length: int = 384  # tokens per window (question + context + special tokens)
    doc_stride: int = 128  # tokens shared by consecutive windows of a long context
    n_best: int = 20  # start and end candidates per window in the span search
    max_answer_length: int = 30  # longest answer, in tokens
    version_2: bool = False  # allow "no answer" predictions (SQuAD v2)
    null_threshold: float = 0.0  # v2: answer nothing when null score - best span score > this
    context_field: str = "context"
    question_field: str = "question"
    answers_field: str = "answers"

    def __post_init__(self):
        super().__post_init__()
        check("task.max_length", self.max_length >= 32, "must be >= 32")
        check("task.doc_stride", 0 < self.doc_stride < self.max_length, "must be > 0 and < task.max_length")
        check("task.n_best", self.n_best >= 1, "must be >= 1")
        check("task.max_answer_length", self.max_answer_length >= 1, "must be >= 1")


class Task(Data, Features, Inference, Report, BaseTask):
    """The plug-in, by phase: reading and cleaning records (data), windows over long contexts (features),
    the n-best span search (inference), scores, plots and the card's example (report)."""

    auto_class = "AutoModelForQuestionAnswering"
    peft_task_type = "QUESTION_ANS"
    input_fields = ("context", "question")
    group_column = "example_id"  # a question's windows
    head_keys = ("qa_outputs.",)
    hub_pipeline_tag = "question-answering"
    hub_metrics = ("exact_match", "f1")
    score_scale = "exact match and F1 on a 0-100 scale"
    headline_metric = "f1"  # on a 0-100 scale, as the official SQuAD script reports it
    metric_scale = "0-100"

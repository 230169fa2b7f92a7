"""Dialogue summarization with a causal LM (DialogSum): prompt -> summary, scored with ROUGE.

Training rows are `prompt + summary + eos` with the prompt (and padding) masked to -100, so only
the summary is learned. Over-long dialogues lose tokens from `truncation_side`; the summary is
cut (and counted) only where it would leave the dialogue fewer than `min_dialogue_tokens`.
Evaluation rows hold the prompt alone and are completed by batched, left-padded generation;
several reference summaries (DialogSum test: summary1..3) are scored by their max.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ftpipe.core.errors import ConfigError, check, listed
from ftpipe.tasks.base import RecordError, TaskConfig, load_metric, record_id, visible
from ftpipe.tasks.base import Task as BaseTask

log = logging.getLogger(__name__)
IGNORE = -100  # the label value the loss skips
PLACEHOLDER = "\x00dialogue\x00"  # stands for the dialogue while a chat template is rendered


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


EXAMPLE = "#Person1#: Are you coming to the party tonight?\\n#Person2#: Yes, I will bring some cake."  # the card's


class Task(BaseTask):
    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    input_fields = ("dialogue",)
    hub_pipeline_tag = "text-generation"  # a causal LM: text-generation is the pipeline that runs it
    hub_metrics = ("rouge",)
    headline_metric = "rougeL"  # the longest common subsequence: credits a summary's order too
    packs = True  # prompt + summary + eos rows, the prompt labelled -100: train.packing flattens them

    # --- preprocess -------------------------------------------------------------
    def clean(self, record, data_cfg):
        dialogue = record.get(self.cfg.dialogue_field)
        if not visible(dialogue):
            raise RecordError(self.cfg.dialogue_field, f"empty or missing dialogue (columns: {listed(record)}; map them with data.columns)")
        references = [record[f].strip() for f in self.cfg.summary_fields if visible(record.get(f))]
        if not references:
            raise RecordError(self.cfg.summary_fields[0], f"no summary in any of {', '.join(self.cfg.summary_fields)}")
        return {"id": record_id(record), "dialogue": dialogue.strip(), "references": references}

    # --- tokenize ---------------------------------------------------------------
    def prompt_parts(self, tokenizer) -> tuple[list[int], list[int]]:
        """Token ids before and after the dialogue (the template, rendered once)."""
        text = self.cfg.prompt.replace("{dialogue}", PLACEHOLDER)
        if self.cfg.chat_template:
            if not tokenizer.chat_template:
                raise ConfigError("task.chat_template", "the tokenizer has no chat template")
            text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        before, after = text.split(PLACEHOLDER)
        # A chat template writes its own BOS; a plain prompt gets the one the tokenizer would add.
        bos = [tokenizer.bos_token_id] if getattr(tokenizer, "add_bos_token", False) and not self.cfg.chat_template else []
        encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
        return bos + encode(before), encode(after)

    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        before, after = self.prompt_parts(tokenizer)
        eos = [tokenizer.eos_token_id]
        training = split == "train"
        room = self.cfg.max_length - len(before) - len(after)  # dialogue + summary tokens
        if room <= self.cfg.min_dialogue_tokens:
            raise ConfigError("task.max_length", f"{self.cfg.max_length} leaves no room for a summary: the prompt takes "
                                                 f"{len(before) + len(after)} tokens and task.min_dialogue_tokens is {self.cfg.min_dialogue_tokens}")

        def encode(batch):
            dialogues = tokenizer(batch["dialogue"], add_special_tokens=False)["input_ids"]
            out = {"input_ids": [], "attention_mask": [], "labels": [], "summary_cut": []}
            for dialogue, refs in zip(dialogues, batch["references"]):
                summary = tokenizer(refs[0], add_special_tokens=False)["input_ids"] + eos if training else []
                # A summary too long for max_length once cut the dialogue to nothing: the row trained on an
                # empty prompt. Now the dialogue keeps min_dialogue_tokens and the summary is cut (and counted)
                # instead. Cut, not dropped: its start still pairs with its dialogue, and dropping would skew
                # training toward short summaries and shrink the data out of sight.
                summary_room = room - min(len(dialogue), self.cfg.min_dialogue_tokens)
                out["summary_cut"].append(len(summary) > summary_room)
                summary = summary[:summary_room]
                budget = room - len(summary)
                if len(dialogue) > budget:
                    dialogue = dialogue[:budget] if self.cfg.truncation_side == "right" else dialogue[len(dialogue) - budget:]
                prompt = before + dialogue + after
                out["input_ids"].append(prompt + summary)
                out["attention_mask"].append([1] * (len(prompt) + len(summary)))
                out["labels"].append([IGNORE] * len(prompt) + summary)
            return out

        features = dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=["dialogue", "references"])
        if cut := sum(features["summary_cut"]):
            log.warning("%s: %d of %d summaries cut to fit task.max_length=%d beside task.min_dialogue_tokens=%d dialogue tokens",
                        split, cut, len(features), self.cfg.max_length, self.cfg.min_dialogue_tokens)
        return features.remove_columns("summary_cut")

    def collator(self, tokenizer):
        return PadCollator(tokenizer.pad_token_id, "right")

    # --- inference --------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        from ftpipe.inference import batched

        generation = {"max_new_tokens": 64, "do_sample": False, **cfg.generation}

        def step(model, batch, _):
            generated = model.generate(**batch, pad_token_id=tokenizer.pad_token_id, **generation)
            return [text.strip() for text in tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]

        prompts = [{"input_ids": ids} for ids in features["input_ids"]]
        # Left padding: generation appends on the right.
        outputs = batched(model, prompts, PadCollator(tokenizer.pad_token_id, "left"), step, cfg.batch_size, cfg.sort_by_length)
        # One prompt per example, in order.
        return [{"id": example_id, "dialogue": dialogue, "prediction": prediction}
                for example_id, dialogue, prediction in zip(features["id"], examples["dialogue"], outputs)]

    def predict(self, model, tokenizer, features, examples, cfg):
        rouge = load_metric(Path(__file__).with_name("rouge.py"))
        rows = []
        for row, refs in zip(self.infer(model, tokenizer, features, examples, cfg), examples["references"]):
            score = rouge.compute(predictions=[row["prediction"]], references=[refs])["rougeL"]
            rows.append({"id": row["id"], "input": row["dialogue"], "reference": refs[0], "references": refs,
                         "prediction": row["prediction"], "score": score})
        return rows

    @property
    def cli_field(self):
        return self.cfg.dialogue_field

    def line_record(self, line):
        return {self.cfg.dialogue_field: line.replace("\\n", "\n")}  # a dialogue on one line spells its turns' breaks \n

    def prediction_record(self, record):
        if any(isinstance(record.get(f), str) and record[f].strip() for f in self.cfg.summary_fields):
            return record
        return {**record, self.cfg.summary_fields[0]: "-"}  # no reference needed

    def card_example(self, adapter):
        import json

        lines = [f'prompt = {json.dumps(self.cfg.prompt)}.replace("{{dialogue}}", "{EXAMPLE}")']
        if self.cfg.chat_template:
            lines += ['prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)']
        return [], lines + [
            'inputs = tokenizer(prompt, return_tensors="pt")',
            "output = model.generate(**inputs, max_new_tokens=64, do_sample=False, pad_token_id=tokenizer.pad_token_id)",
            'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))']

    def example_stats(self, rows):
        import numpy as np

        # rougeL is the mean of the per-dialogue ROUGE-L each row carries as its score.
        return np.array([[r["score"]] for r in rows], dtype=np.float64), lambda sums, n: {"rougeL": sums[..., 0] / n}

    def metrics(self, rows):
        return load_metric(Path(__file__).with_name("rouge.py")).compute(predictions=[r["prediction"] for r in rows], references=[r["references"] for r in rows])

    def write_plots(self, rows, out_dir):
        import csv

        # Per-example ROUGE-L (0-1) and summary lengths: `dvc plots` shows their spread (PLOTS below).
        with open(out_dir / "rouge.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["example", "id", "rougeL", "prediction_words", "reference_words"])
            writer.writerows((i, r["id"], r["score"], len(r["prediction"].split()), len(r["reference"].split())) for i, r in enumerate(rows))


# `dvc plots` definitions for this task type (the `plot_specs` slots of dvc.yaml, filled by
# src/hydra_plugins from task.type): base and tuned in each.
_BOTH = ("plots/base/rouge.csv", "plots/tuned/rouge.csv")
PLOTS = [
    {"rougeL_per_example": {"template": "scatter", "x": "example", "y": {path: "rougeL" for path in _BOTH},
                            "title": "ROUGE-L (0-1) per example, base and tuned"}},
    {"summary_length": {"template": "scatter", "x": "reference_words", "y": {path: "prediction_words" for path in _BOTH},
                        "title": "Summary length vs reference length (words), base and tuned"}},
    {"rougeL_by_reference_length": {"template": "scatter", "x": "reference_words", "y": {path: "rougeL" for path in _BOTH},
                                    "title": "ROUGE-L (0-1) vs reference length (words), base and tuned"}},
]


class PadCollator:
    """Pads input_ids with the pad token, attention_mask with 0 and labels with -100, on one side."""

    def __init__(self, pad_id: int, side: str):
        self.pad_id, self.side = pad_id, side

    def __call__(self, rows):
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        pads = {"input_ids": self.pad_id, "attention_mask": 0, "labels": IGNORE}
        batch = {}
        for key, pad in pads.items():
            if key == "attention_mask" or key in rows[0]:
                values = [r.get(key) or [1] * len(r["input_ids"]) for r in rows] if key == "attention_mask" else [r[key] for r in rows]
                batch[key] = torch.tensor([self._pad(list(v), width, pad) for v in values])
        return batch

    def _pad(self, values, width, pad):
        fill = [pad] * (width - len(values))
        return fill + values if self.side == "left" else values + fill


"""Summarization's features: the prompt (a chat template where the model has one) and the summary as one
causal-LM row, the prompt's tokens masked out of the loss; left padding for generation."""

from __future__ import annotations

import logging

from ftpipe.core.errors import ConfigError

log = logging.getLogger(__name__)


IGNORE = -100  # the label value the loss skips


PLACEHOLDER = "\x00dialogue\x00"  # stands for the dialogue while a chat template is rendered


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


class Features:
    """Summarization's features phase (mixed into the Task in __init__)."""

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

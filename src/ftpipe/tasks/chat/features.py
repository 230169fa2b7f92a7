"""Chat's features: the conversation rendered with the chat template, one causal-LM row per conversation, every
token but the assistant's words (and their end-of-turn marker) labelled -100.

Training learns every assistant turn (`task.train_on: all_assistant`) or the last one (`last_assistant`). A
conversation over `task.max_length` tokens loses its oldest exchanges (a user turn and the replies to it) first,
the system prompt kept; one whose last exchange alone is too long is dropped from training rather than cut.
Evaluation rows hold the conversation before its last assistant turn, with the generation prompt, to generate
from (cut on the left if too long), and the whole conversation with only that turn labelled, for perplexity.
"""

from __future__ import annotations

import logging
from collections import Counter

from ftpipe.tasks.chat.templates import assistant_spans, end_of_turn, labelled, render

log = logging.getLogger(__name__)
IGNORE = -100  # the label value the loss skips


class PadCollator:
    """Pads input_ids with the pad token, attention_mask with 0 and labels with -100, on one side."""

    def __init__(self, pad_id: int, side: str):
        self.pad_id, self.side = pad_id, side

    def __call__(self, rows):
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        fill = lambda values, pad: ([pad] * (width - len(values)) + values if self.side == "left"  # noqa: E731
                                    else values + [pad] * (width - len(values)))
        batch = {"input_ids": torch.tensor([fill(list(r["input_ids"]), self.pad_id) for r in rows]),
                 "attention_mask": torch.tensor([fill([1] * len(r["input_ids"]), 0) for r in rows])}
        if "labels" in rows[0]:
            batch["labels"] = torch.tensor([fill(list(r["labels"]), IGNORE) for r in rows])
        return batch


def _exchanges(messages: list[dict]) -> list[int]:
    """Indices of the user turns that open each exchange."""
    return [i for i, m in enumerate(messages) if m["role"] == "user"]


class Features:
    """Chat's features phase (mixed into the Task in __init__)."""

    def encode(self, tokenizer, messages: list[dict], learn: str, marker: str):
        """(input_ids, labels, exchanges dropped) for the longest recent part of `messages` that fits, or None."""
        system = [m for m in messages[:1] if m["role"] == "system"]
        opens = _exchanges(messages)
        for dropped, first in enumerate(opens):
            kept = system + messages[first:]
            assistants = [i for i, m in enumerate(kept) if m["role"] == "assistant"]
            text, spans = assistant_spans(tokenizer, kept, assistants if learn == "all_assistant" else assistants[-1:], marker)
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            if len(encoded["input_ids"]) <= self.cfg.max_length:
                mask = labelled(encoded["offset_mapping"], spans)
                return encoded["input_ids"], [t if m else IGNORE for t, m in zip(encoded["input_ids"], mask)], dropped
        return None

    def tokenize(self, dataset, tokenizer, split, num_proc, batch_size):
        marker = end_of_turn(tokenizer)
        training = split == "train"
        counts: Counter = Counter()

        def encode(batch):
            out = {"input_ids": [], "attention_mask": [], "keep": []}
            out.update({"labels": []} if training else {"full_ids": [], "full_labels": []})
            for messages in batch["messages"]:
                messages = [dict(m) for m in messages]
                full = self.encode(tokenizer, messages, self.cfg.train_on if training else "last_assistant", marker)
                counts["turns_dropped"] += full[2] if full else 0
                counts["too_long"] += full is None
                ids, labels = (full[0], full[1]) if full else ([], [])
                out["keep"].append(full is not None or not training)
                if training:
                    out["labels"].append(labels)
                else:
                    out["full_ids"].append(ids)
                    out["full_labels"].append(labels)
                    ids = self._prompt(tokenizer, messages)
                out["input_ids"].append(ids)
                out["attention_mask"].append([1] * len(ids))
            return out

        features = dataset.map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=["messages", "references"])
        features = features.filter(lambda keep: keep, input_columns="keep").remove_columns("keep")
        if counts["turns_dropped"] or counts["too_long"]:
            log.warning("%s: oldest exchanges dropped to fit task.max_length=%d: %d; conversations whose last exchange alone "
                        "is longer (%s): %d", split, self.cfg.max_length, counts["turns_dropped"],
                        "dropped from training" if training else "scored on what fits", counts["too_long"])
        return features

    def _prompt(self, tokenizer, messages: list[dict]) -> list[int]:
        """The conversation before its last assistant turn, with the generation prompt: the left end cut to fit."""
        ids = tokenizer(render(tokenizer, messages[:-1], generation_prompt=True), add_special_tokens=False)["input_ids"]
        room = self.cfg.max_length
        return ids[len(ids) - room:] if len(ids) > room else ids

    def collator(self, tokenizer):
        return PadCollator(tokenizer.pad_token_id, "right")

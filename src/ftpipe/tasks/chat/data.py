"""Chat's records: a conversation in any of the formats (formats.py) cleaned to {id, messages, references};
records to predict on, and conversations from ftpipe-predict --chat."""

from __future__ import annotations

from ftpipe.tasks.base import RecordError, record_id, visible
from ftpipe.tasks.chat.formats import _as_list, conversation, raw_turns

PENDING = "-"  # the placeholder reply of a conversation to answer: prediction never reads it


class Data:
    """Chat's data phase (mixed into the Task in __init__)."""

    def clean(self, record, data_cfg):
        messages = conversation(record, self.cfg, self.stats)
        extra = record.get(self.cfg.references_field)
        extra = [] if extra is None else _as_list(extra, self.cfg.references_field)
        if not all(visible(ref) for ref in extra):
            raise RecordError(self.cfg.references_field, "a reference that is empty or not text")
        # The last assistant turn is the reference evaluation scores the generated turn against (with any others given).
        references = [messages[-1]["content"], *(ref.strip() for ref in extra)]
        return {"id": record_id(record), "messages": messages, "references": list(dict.fromkeys(references))}

    @property
    def cli_field(self):
        return None  # a conversation is several fields: --file, or --chat a turn at a time

    def prediction_record(self, record):
        """A conversation to answer: one that ends on a user turn gets a placeholder reply (never read)."""
        field, turns = raw_turns(record, self.cfg)
        if field == "instruction/output":
            return record if visible(record.get("output")) else {**record, "output": PENDING}
        key = "from" if field == self.cfg.conversations_field else "role"
        value = "value" if key == "from" else "content"
        roles = [str(role).strip().lower() for role, _ in turns]
        if roles and roles[-1] in ("user", "human"):
            turns = [{key: role, value: content} for role, content in turns]
            return {**record, field: turns + [{key: "assistant" if key == "role" else "gpt", value: PENDING}]}
        return record

    def chat_record(self, record, system=None):
        """The record with `system` as its system prompt where it has none, its last turn the user's."""
        record = self.prediction_record(record)
        if system is None:
            return record
        field, turns = raw_turns(record, self.cfg)
        if field == "instruction/output":
            return record if record.get("system") is not None else {**record, "system": system}
        if turns and str(turns[0][0]).strip().lower() == "system":
            return record
        key, value = ("from", "value") if field == self.cfg.conversations_field else ("role", "content")
        return {**record, field: [{key: "system", value: system}, *({key: r, value: c} for r, c in turns)]}

"""Conversations in the formats people keep them in, as one list of {role, content} turns.

- OpenAI-style `messages`: [{"role": "system" | "user" | "assistant", "content": "..."}]
- ShareGPT `conversations`: [{"from": "system" | "human" | "gpt", "value": "..."}] ("user"/"assistant" too)
- Alpaca: `instruction`, optional `input` (joined to the instruction by a blank line), `output`; optional `system`

Each record is read by the fields it has (a file may mix them). The turns are checked as a chat template
needs them: known roles, text content (a list of parts, as multimodal messages carry, is refused rather than
flattened), a system turn only first, the first other turn the user's, and an assistant turn to learn from.
Consecutive turns of one role are joined with a blank line (and counted: `turns_merged`), or refused with
`task.consecutive_turns: error`; turns after the last assistant turn train nothing and are dropped (counted:
`trailing_turns_dropped`).
"""

from __future__ import annotations

import json
from collections import Counter

from ftpipe.core.errors import listed
from ftpipe.tasks.base import RecordError, visible

ROLES = {"system": "system", "user": "user", "assistant": "assistant", "human": "user", "gpt": "assistant"}
JOIN = "\n\n"  # between the parts of a merged turn, and Alpaca's instruction and input


def _as_list(value, field: str) -> list:
    """A list of turns as files carry it: a list, a JSON list (a CSV cell), a Parquet array."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RecordError(field, "is not a list of turns (nor a JSON list)") from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list of turns, got {type(value).__name__}")
    return value


def raw_turns(record: dict, cfg) -> tuple[str, list[tuple[str, object]]]:
    """(the field the turns came from, [(role as written, content)]) whichever format the record is in."""
    if record.get(cfg.messages_field) is not None:
        field, keys = cfg.messages_field, ("role", "content")
    elif record.get(cfg.conversations_field) is not None:
        field, keys = cfg.conversations_field, ("from", "value")
    elif record.get("instruction") is not None:
        user = record["instruction"]
        if visible(record.get("input")):
            user = f"{str(user).strip()}{JOIN}{str(record['input']).strip()}" if isinstance(user, str) else user
        system = [("system", record["system"])] if record.get("system") is not None else []
        return "instruction/output", [*system, ("user", user), ("assistant", record.get("output"))]
    else:
        raise RecordError(cfg.messages_field, f"no conversation: expected {cfg.messages_field} (OpenAI), {cfg.conversations_field} "
                                              f"(ShareGPT) or instruction/output (Alpaca) (columns: {listed(record)}; map them with data.columns)")
    turns = []
    for number, turn in enumerate(_as_list(record[field], field), start=1):
        if not isinstance(turn, dict) or keys[0] not in turn:
            raise RecordError(field, f"turn {number}: expected an object with '{keys[0]}' and '{keys[1]}'")
        turns.append((turn[keys[0]], turn.get(keys[1])))
    return field, turns


def conversation(record: dict, cfg, stats: Counter) -> list[dict]:
    """The record's turns, checked and normalised: [{"role", "content"}], ending with an assistant turn."""
    field, turns = raw_turns(record, cfg)
    messages: list[dict] = []
    for number, (role, content) in enumerate(turns, start=1):
        where = f"turn {number}"
        if not isinstance(role, str) or role.strip().lower() not in ROLES:
            raise RecordError(field, f"{where}: unknown role {role!r} (system, user, assistant; ShareGPT: human, gpt)")
        role = ROLES[role.strip().lower()]
        if isinstance(content, (list, dict)) or hasattr(content, "tolist"):
            raise RecordError(field, f"{where}: content is a {type(content).__name__} of parts (multimodal?), not text: "
                                     "ftpipe trains on text turns only and does not flatten parts")
        if content is None or (isinstance(content, str) and not visible(content)):
            raise RecordError(field, f"{where}: empty {role} content")
        if not isinstance(content, str):
            raise RecordError(field, f"{where}: content is {type(content).__name__}, not text")
        if role == "system" and messages:
            raise RecordError(field, f"{where}: a system turn after the first turn (a system prompt comes first, once)")
        if messages and messages[-1]["role"] == role:
            if cfg.consecutive_turns == "error":
                raise RecordError(field, f"{where}: a second {role} turn in a row (the turns do not alternate; "
                                         "task.consecutive_turns=merge joins them)")
            messages[-1]["content"] += JOIN + content.strip()
            stats["turns_merged"] += 1
            continue
        messages.append({"role": role, "content": content.strip()})
    _check_order(messages, field, stats)
    return messages


def _check_order(messages: list[dict], field: str, stats: Counter) -> None:
    """A user speaks first, and the conversation ends with what the assistant learns (later turns are dropped)."""
    dialogue = [m for m in messages if m["role"] != "system"]
    if dialogue and dialogue[0]["role"] != "user":
        raise RecordError(field, "the first turn after the system prompt is the assistant's: a conversation starts with a user turn")
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise RecordError(field, "no assistant turn: nothing to learn or to score")
    stats["turns_merged"] += 0  # the keys show in metrics/preprocess.json even at 0
    stats["trailing_turns_dropped"] += len(messages) - last - 1
    del messages[last + 1:]

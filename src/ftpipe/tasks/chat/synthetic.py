"""Synthetic conversations for the offline tests: a system prompt, one to three exchanges, in the three formats.

Each user turn asks for a fact about a made-up item (its colour, its size, its owner); the assistant answers
in a fixed form ("The colour of the lamp is red."), so a tiny model can learn the form and the facts within a
conversation: the answer of the last turn repeats a fact stated earlier in it, or in the question itself.
"""

from __future__ import annotations

import random

ITEMS = ["lamp", "boat", "chair", "kite", "clock", "bottle", "garden", "window", "piano", "bridge"]
FACTS = {"colour": ["red", "blue", "green", "yellow", "black", "white"], "size": ["small", "large", "tiny", "huge"],
         "owner": ["Anna", "Omar", "Lena", "Marco", "Priya", "Tom"]}
SYSTEM = "You answer questions about things in one short sentence."


def exchange(rng: random.Random) -> tuple[str, str]:
    item, fact = rng.choice(ITEMS), rng.choice(list(FACTS))
    value = rng.choice(FACTS[fact])
    return f"The {fact} of the {item} is {value}. What is the {fact} of the {item}?", f"The {fact} of the {item} is {value}."


def _formatted(i: int, turns: list[tuple[str, str]], system: bool) -> dict:
    """One record in OpenAI's, ShareGPT's or Alpaca's form (Alpaca: single-turn conversations only)."""
    kind = i % 3 if len(turns) == 1 else i % 2
    if kind == 2:
        return {"instruction": turns[0][0], "output": turns[0][1], **({"system": SYSTEM} if system else {})}
    if kind == 1:
        conv = [{"from": "system", "value": SYSTEM}] if system else []
        conv += [{"from": who, "value": text} for q, a in turns for who, text in (("human", q), ("gpt", a))]
        return {"conversations": conv}
    messages = [{"role": "system", "content": SYSTEM}] if system else []
    messages += [{"role": role, "content": text} for q, a in turns for role, text in (("user", q), ("assistant", a))]
    return {"messages": messages}


def conversations(n: int, seed: int = 0) -> list[dict]:
    """`n` records with ids, in the three formats by turns."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        turns = [exchange(rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        out.append({"id": f"chat-{seed}-{i}", **_formatted(i, turns, system=rng.random() < 0.7)})
    return out

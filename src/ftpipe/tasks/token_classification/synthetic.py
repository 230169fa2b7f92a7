"""Synthetic entity-tagged sentences for the offline tests and the quickstart-sized experiment.

People, places and organisations in templated sentences. Not trivially separable: some names are
both a person and a place (Jordan, Paris, Sydney), so only the context tells the type; entities
run one to three words; a sentence holds zero to three of them.
"""

from __future__ import annotations

import random

FIRST = ["Anna", "Omar", "Lena", "Marco", "Priya", "Tom", "Yuki", "Sara", "Kofi", "Elena", "Jordan", "Paris", "Sydney"]
LAST = ["Berg", "Khan", "Novak", "Rossi", "Shah", "Miller", "Tanaka", "Diallo", "Silva", "Moreau"]
PLACES = ["Vesta", "Lisbon", "Nairobi", "Oslo", "Kyoto", "Lima", "Jordan", "Paris", "Sydney", "New Harbor", "Port Elm",
          "San Calda", "North Ridge Valley"]
ORGS = ["Acme Corp", "Globex", "Initech", "Umbrella Labs", "Blue Finch Bank", "Northwind", "Vesta Motors",
        "Red River Council", "Hooli", "the Paris Group"]
# {DAY} and {WHEN} vary the sentences around the entities, so few eval sentences repeat a train one.
TEMPLATES = [
    "{PER} flew to {LOC} on {DAY} .",
    "{PER} works for {ORG} in {LOC} .",
    "Officials at {ORG} said on {DAY} the plan was approved .",
    "{ORG} opened a new office in {LOC} {WHEN} .",
    "We met {PER} and {PER} at the station {WHEN} .",
    "The weather in {LOC} was cold on {DAY} .",
    "According to {PER} , {ORG} will hire more staff {WHEN} .",
    "Nobody expected the results to arrive {WHEN} .",
    "{PER} , who grew up in {LOC} , joined {ORG} {WHEN} .",
    "A spokesperson for {ORG} declined to comment on {DAY} .",
    "Traffic near {LOC} slowed {WHEN} after the storm .",
    "{PER} thanked the team on {DAY} for a great season .",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WHEN = ["last year", "this week", "so early", "yesterday", "in March", "before noon", "again", "at last"]
TYPES = ["PER", "LOC", "ORG"]


def _person(rng: random.Random) -> str:
    return rng.choice(FIRST) if rng.random() < 0.3 else f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    """One templated sentence as words and IOB2 tags."""
    tokens, tags = [], []
    template = rng.choice(TEMPLATES).replace("{DAY}", rng.choice(DAYS)).replace("{WHEN}", rng.choice(WHEN))
    for word in template.split():
        if word.startswith("{"):
            kind = word[1:4]
            name = {"PER": _person, "LOC": lambda r: r.choice(PLACES), "ORG": lambda r: r.choice(ORGS)}[kind](rng)
            parts = name.split()
            tokens += parts
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(parts) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    return tokens, tags


def entities(n: int, seed: int = 0) -> list[dict]:
    """`n` records {id, tokens, tags} with IOB2 tag names."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tokens, tags = sentence(rng)
        out.append({"id": f"ent-{seed}-{i}", "tokens": tokens, "tags": tags})
    return out

"""A synthetic 5-class review dataset for the offline quickstart and the tests.

Stars are not trivially separable: every class draws from one shared vocabulary, each review
mixes sentiment phrases from its own and the neighbouring star levels, and a fraction of labels
is resampled at random (label noise). A model must read several phrases to get it right.
"""

from __future__ import annotations

import random

TOPICS = ["food", "service", "staff", "price", "atmosphere", "location", "menu", "coffee", "dessert", "wait"]
# Phrases by sentiment level 0 (very negative) .. 4 (very positive).
PHRASES = [
    ["was awful", "was a disaster", "made me sick", "was the worst ever", "was inedible", "was rude and slow"],
    ["was disappointing", "was below average", "felt overpriced", "was bland", "was not great", "was slow"],
    ["was okay", "was fine", "was average", "was decent enough", "was nothing special", "was acceptable"],
    ["was good", "was tasty", "was friendly", "was worth it", "was pleasant", "was nice"],
    ["was amazing", "was outstanding", "was perfect", "was the best in town", "was superb", "was wonderful"],
]
OPENERS = ["We came here for dinner.", "I visited last week.", "Stopped by with friends.", "Came for lunch today.",
           "Second time here.", "Ordered takeout on Friday.", "Tried this place after a recommendation."]
CLOSERS = ["Would I return? Maybe.", "That is all.", "Overall, make of it what you will.", "We paid and left.",
           "I will think about it.", "Parking was easy.", ""]
LABELS = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]


def review(rng: random.Random, stars: int) -> str:
    """A review whose phrases come mostly from `stars`, sometimes from a neighbouring level."""
    sentences = [rng.choice(OPENERS)]
    for topic in rng.sample(TOPICS, rng.randint(2, 4)):
        level = min(4, max(0, stars + rng.choice([-1, 0, 0, 0, 1])))
        sentences.append(f"The {topic} {rng.choice(PHRASES[level])}.")
    sentences.append(rng.choice(CLOSERS))
    return " ".join(s for s in sentences if s)


def reviews(n: int, seed: int = 0, label_noise: float = 0.1) -> list[dict]:
    """`n` records {id, text, label}: labels balanced, `label_noise` of them resampled uniformly."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        stars = i % len(LABELS)
        label = rng.randrange(len(LABELS)) if rng.random() < label_noise else stars
        records.append({"id": f"syn-{seed}-{i}", "text": review(rng, stars), "label": LABELS[label]})
    rng.shuffle(records)
    return records


GENERATORS = {"reviews": reviews}

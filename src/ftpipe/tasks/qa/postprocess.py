"""From per-window start/end logits to one answer per question, as the reference run_qa recipe does.

Every window (feature) of a question proposes its `n_best` start and end tokens; a pair is a
candidate when both lie in the context, end >= start and the span is at most `max_answer_length`
tokens. Its score is start + end logit. Offsets map the best candidate back to the context text.
For SQuAD v2 the "no answer" score is the smallest CLS score over the windows: the question is
left unanswered when it beats the best span by more than `null_threshold`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def best_spans(start_logits, end_logits, offsets, n_best: int, max_answer_length: int) -> list[tuple[float, int, int]]:
    """(score, start char, end char) candidates of one window, best first.

    `offsets[i]` is the (start, end) characters of token i in the context, or None for tokens
    that are not context (question, special tokens, padding).
    """
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    starts = np.argsort(start_logits)[::-1][:n_best]
    ends = np.argsort(end_logits)[::-1][:n_best]
    out = []
    for s in starts:
        for e in ends:
            if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                continue
            if e < s or e - s + 1 > max_answer_length:
                continue
            out.append((float(start_logits[s] + end_logits[e]), int(offsets[s][0]), int(offsets[e][1])))
    out.sort(key=lambda c: -c[0])
    return out[:n_best]


def postprocess(example_ids, contexts: dict[str, str], feature_example_ids, start_logits, end_logits, offsets,
                n_best: int = 20, max_answer_length: int = 30, allow_no_answer: bool = False,
                null_threshold: float = 0.0) -> dict[str, dict]:
    """One answer per example id: {"text", "start" (char, -1 = none), "score", "probability", "null_score"}.

    `probability` is the softmax of the best candidate over the question's n-best candidates
    (and the null answer for v2): a confidence to print, not a calibrated one.
    """
    windows = defaultdict(list)
    for i, example_id in enumerate(feature_example_ids):
        windows[example_id].append(i)
    answers = {}
    for example_id in example_ids:
        candidates, null_score = [], None
        for i in windows.get(example_id, []):
            candidates += best_spans(start_logits[i], end_logits[i], offsets[i], n_best, max_answer_length)
            cls = float(start_logits[i][0] + end_logits[i][0])
            null_score = cls if null_score is None else min(null_score, cls)
        candidates.sort(key=lambda c: -c[0])
        candidates = candidates[:n_best]
        scores = [c[0] for c in candidates] + ([null_score] if allow_no_answer and null_score is not None else [])
        best = candidates[0] if candidates else None
        no_answer = best is None or (allow_no_answer and null_score is not None and null_score - best[0] > null_threshold)
        if no_answer:
            text, score, start = "", null_score if null_score is not None else 0.0, -1
        else:
            score, start, end = best
            text = contexts[example_id][start:end]
        answers[example_id] = {"text": text, "start": start, "score": score, "probability": _softmax_top(scores, score), "null_score": null_score}
    return answers


def _softmax_top(scores: list[float], chosen: float) -> float:
    if not scores:
        return 0.0
    values = np.asarray(scores, dtype=np.float64)
    weights = np.exp(values - values.max())
    return float(np.exp(chosen - values.max()) / weights.sum())

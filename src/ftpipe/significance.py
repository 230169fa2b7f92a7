"""How sure a base-vs-tuned difference is: a paired bootstrap over evaluation examples, and McNemar's
exact test where each example is simply right or wrong.

The bootstrap redraws the evaluation set with replacement (the same draw for both models: the
comparison is paired) and recomputes each headline metric from per-example additive statistics
(Task.example_stats: correct counts, true positives per class, ...), so a resample costs a matrix
product, not a metric run. Its 95% interval is the 2.5th to 97.5th percentile of the resampled
deltas; the two-sided p-value is twice the smaller share of resampled deltas on either side of 0
(counted as (k + 1) / (resamples + 1), so it is never below 2 / (resamples + 1)).
No correction for multiple comparisons is applied here: each metric is its own question.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

CHUNK = 100  # resamples drawn at once: bounds memory at CHUNK x examples counts


def paired_bootstrap(base: np.ndarray, tuned: np.ndarray, to_metrics: Callable, resamples: int, seed: int) -> dict:
    """{metric: {delta, ci95: [low, high], p_value}} for every metric `to_metrics(sums, n)` returns.

    `base`, `tuned`: one row of additive statistics per example, in the same example order.
    """
    n = len(base)
    if n == 0 or resamples < 1:
        return {}
    observed = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in _delta(base.sum(0)[None], tuned.sum(0)[None], to_metrics, n).items()}
    rng = np.random.default_rng(seed)
    deltas: dict[str, list] = {k: [] for k in observed}
    for start in range(0, resamples, CHUNK):
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(CHUNK, resamples - start)).astype(np.float64)
        for key, value in _delta(counts @ base, counts @ tuned, to_metrics, n).items():
            deltas[key].append(np.asarray(value, dtype=np.float64))
    out = {}
    for key, delta in observed.items():
        resampled = np.concatenate(deltas[key])
        low, high = np.percentile(resampled, [2.5, 97.5])
        # (count + 1) / (resamples + 1): a p-value from resamples is never 0, only below their resolution.
        tail = min(int(np.sum(resampled <= 0)), int(np.sum(resampled >= 0)))
        p = min(1.0, 2 * (tail + 1) / (len(resampled) + 1))
        out[key] = {"delta": delta, "ci95": [float(low), float(high)], "p_value": p}
    return out


def _delta(base_sums, tuned_sums, to_metrics, n) -> dict:
    base_m, tuned_m = to_metrics(base_sums, n), to_metrics(tuned_sums, n)
    return {k: tuned_m[k] - base_m[k] for k in tuned_m}


def mcnemar(base_right: np.ndarray, tuned_right: np.ndarray) -> float:
    """Exact two-sided McNemar p-value: of the examples the models disagree on, is the split 50/50?"""
    from scipy.stats import binomtest

    only_base = int(np.sum(base_right & ~tuned_right))
    only_tuned = int(np.sum(~base_right & tuned_right))
    return 1.0 if only_base + only_tuned == 0 else float(binomtest(only_tuned, only_base + only_tuned, 0.5).pvalue)


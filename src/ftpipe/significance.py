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

    `base`, `tuned`: one row of additive statistics per example, in the same example order: run_bootstrap
    with one run per arm.
    """
    if len(base) == 0 or resamples < 1:
        return {}
    observed, replicates = run_bootstrap([base], [tuned], to_metrics, resamples, seed)
    return {key: {name: value for name, value in interval_and_tests(delta, replicates[key], 0.0).items()
                  if name in ("delta", "ci95", "p_value")} for key, delta in observed.items()}


def mcnemar(base_right: np.ndarray, tuned_right: np.ndarray) -> float:
    """Exact two-sided McNemar p-value: of the examples the models disagree on, is the split 50/50?"""
    from scipy.stats import binomtest

    only_base = int(np.sum(base_right & ~tuned_right))
    only_tuned = int(np.sum(~base_right & tuned_right))
    return 1.0 if only_base + only_tuned == 0 else float(binomtest(only_tuned, only_base + only_tuned, 0.5).pvalue)


def run_bootstrap(a_runs: list[np.ndarray], b_runs: list[np.ndarray], to_metrics: Callable, resamples: int, seed: int,
                  paired: bool = True, resample_seeds: bool = True) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """B minus A where each arm is one or more runs (training seeds): the observed delta of the arms' mean
    metrics, and `resamples` bootstrap replicates of it.

    Each run is one row of additive statistics per example (Task.example_stats). A replicate redraws the
    examples (paired: one draw for every run, which all scored the same examples in the same order;
    unpaired: a draw per arm) and, where an arm has several runs, that arm's runs too (the seed level).
    Before the seed draw each run's deviation from its arm's mean is scaled by sqrt(K / (K - 1)): a
    bootstrap of K values understates their variance by (K - 1) / K, which matters at K = 3. With one run
    per arm and `paired`, the replicates are those of paired_bootstrap for the same seed. Without
    `resample_seeds`, the runs stay as they are: the example-only interval of the same comparison.
    """
    example_rng, seed_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    arms = [np.stack(a_runs).astype(np.float64), np.stack(b_runs).astype(np.float64)]  # (runs, examples, statistics)
    full = [_run_metrics(arm.sum(1), to_metrics, arm.shape[1]) for arm in arms]  # {metric: (runs,)}
    observed = {k: float(full[1][k].mean() - full[0][k].mean()) for k in full[1]}
    replicates: dict[str, list] = {k: [] for k in observed}
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        draws = [example_rng.multinomial(arm.shape[1], np.full(arm.shape[1], 1.0 / arm.shape[1]), size=size).astype(np.float64)
                 for arm in (arms if not paired else arms[:1])]
        values = []
        for i, arm in enumerate(arms):
            counts = draws[0 if paired else i]
            metrics = _run_metrics(np.stack([counts @ run for run in arm]), to_metrics, arm.shape[1])  # {metric: (runs, size)}
            runs = arm.shape[0] if resample_seeds else 1
            scale = np.sqrt(runs / (runs - 1)) - 1 if runs > 1 else 0.0
            picks = seed_rng.integers(runs, size=(size, runs)) if runs > 1 else np.tile(np.arange(arm.shape[0]), (size, 1))
            values.append({k: (v + scale * (full[i][k] - full[i][k].mean())[:, None])[picks.T, np.arange(size)].mean(0)
                           for k, v in metrics.items()})
        for key in observed:
            replicates[key].append(values[1][key] - values[0][key])
    return observed, {k: np.concatenate(v) for k, v in replicates.items()}


def _run_metrics(sums: np.ndarray, to_metrics: Callable, n: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in to_metrics(sums, n).items()}


def interval_and_tests(observed: float, replicates: np.ndarray, margin: float) -> dict:
    """The 95% percentile interval of a delta, its two-sided p-value against 0 (as paired_bootstrap's), and
    the equivalence test against ±`margin`: two one-sided tests, the p-value the larger of the shares of
    replicates at or beyond -margin and +margin (each counted as (k + 1) / (resamples + 1)); equivalent
    at the 5% level when it is below 0.05, which is the 90% interval lying inside ±margin."""
    low, high = np.percentile(replicates, [2.5, 97.5])
    total = len(replicates) + 1
    tail = min(int(np.sum(replicates <= 0)), int(np.sum(replicates >= 0)))
    p_equivalent = max((int(np.sum(replicates <= -margin)) + 1) / total, (int(np.sum(replicates >= margin)) + 1) / total)
    return {"delta": observed, "ci95": [float(low), float(high)], "p_value": min(1.0, 2 * (tail + 1) / total),
            "margin": margin, "p_equivalent": min(1.0, p_equivalent)}


def verdict(tested: dict, names: tuple[str, str] = ("A", "B")) -> str:
    """B better, A better (the 95% interval excludes 0), equivalent within ±margin (the equivalence test
    at 5%), or within noise: neither a difference nor equivalence is shown."""
    low, high = tested["ci95"]
    if low > 0 or high < 0:
        return f"{names[1] if low > 0 else names[0]} better"
    if tested["p_equivalent"] < 0.05:
        return f"equivalent within ±{tested['margin']:g}"
    return "within noise"

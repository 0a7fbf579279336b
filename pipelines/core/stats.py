"""Paired comparison of two models scored on the same examples: the bootstrap interval of a
mean per-example difference, and McNemar's exact test for classifiers."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from pipelines.core.comparison import PairedComparison


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of b successes in b + c at p = 0.5."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy.stats costs 0.7 s at start-up; few runs need it

    return float(binomtest(b, b + c, 0.5).pvalue)


def bootstrap_mean_ci(
    values: NDArray[np.float64], *, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of mean(values), resampling its elements with replacement (a
    paired difference per example: the pairs stay together)."""
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    # Chunked so that 10^5 resamples of 10^5 examples stay within a few hundred MB.
    chunk = max(1, 20_000_000 // max(n, 1))
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_bootstrap_ci(
    cand_correct: NDArray[np.bool_],
    base_correct: NDArray[np.bool_],
    *,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the accuracy delta, resampling examples (pairs kept together)."""
    diff = cand_correct.astype(np.float64) - base_correct.astype(np.float64)
    return bootstrap_mean_ci(diff, resamples=resamples, seed=seed, level=level)


def compare_paired(
    labels: NDArray[np.int64],
    candidate: NDArray[np.int64],
    baseline: NDArray[np.int64],
    *,
    resamples: int,
    seed: int,
) -> PairedComparison:
    """Compare two prediction vectors on the same labels, with a bootstrap CI for the delta."""
    if not (labels.shape == candidate.shape == baseline.shape) or labels.ndim != 1:
        raise ValueError("labels and both prediction vectors must be 1-D and of equal length")
    if labels.shape[0] == 0:
        raise ValueError("cannot compare on zero examples")
    cand_ok = candidate == labels
    base_ok = baseline == labels
    low, high = paired_bootstrap_ci(cand_ok, base_ok, resamples=resamples, seed=seed)
    b = int(np.sum(cand_ok & ~base_ok))
    c = int(np.sum(~cand_ok & base_ok))
    cand_acc = float(cand_ok.mean())
    base_acc = float(base_ok.mean())
    return PairedComparison(
        n=int(labels.shape[0]),
        candidate_accuracy=cand_acc,
        baseline_accuracy=base_acc,
        delta=cand_acc - base_acc,
        ci_low=low,
        ci_high=high,
        b=b,
        c=c,
        p_value=mcnemar_exact(b, c),
    )

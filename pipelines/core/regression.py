"""Regression: the metrics of one model, and the paired change rule of two models scored on the
same examples.

The change rule compares absolute errors example by example: d_i = |e_cand,i| - |e_base,i|, so
a positive mean is worse. Two views of the same differences, as for classification:
- a percentile bootstrap 95% interval of mean(d), resampling examples (pairs kept together);
- the Wilcoxon signed-rank test of d (two-sided), which needs no normality and, unlike a t-test,
  is not driven by a few large errors.
The not-worse margin is relative to the baseline's MAE: "at most 5% worse" means the interval's
upper bound on mean(d) may not exceed 0.05 * MAE_base, whatever the target's unit is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pipelines.core.comparison import PairedErrors
from pipelines.core.stats import bootstrap_mean_ci


@dataclass(frozen=True)
class RegressionMetrics:
    """Root mean squared error, mean absolute error and the coefficient of determination."""

    rmse: float
    mae: float
    r2: float


def regression_metrics(y: NDArray[np.float64], pred: NDArray[np.float64]) -> RegressionMetrics:
    """RMSE, MAE and R² of ``pred`` against ``y``; R² is 0 for a constant target predicted
    exactly, and -inf never leaves this function (a constant target with errors gives 0)."""
    if y.shape != pred.shape or y.ndim != 1 or y.shape[0] == 0:
        raise ValueError("targets and predictions must be 1-D, non-empty and of equal length")
    err = pred - y
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    return RegressionMetrics(
        rmse=float(np.sqrt(np.mean(err**2))), mae=float(np.mean(np.abs(err))), r2=r2
    )


def wilcoxon_signed_rank(diff: NDArray[np.float64]) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank statistic and p-value of ``diff``; (0, 1) when every
    difference is zero (the models agree on every example: no evidence either way)."""
    if not np.any(diff != 0):
        return 0.0, 1.0
    from scipy.stats import wilcoxon  # scipy.stats costs 0.7 s at start-up; few runs need it

    result = wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def compare_errors(
    y: NDArray[np.float64],
    candidate: NDArray[np.float64],
    baseline: NDArray[np.float64],
    *,
    resamples: int,
    seed: int,
) -> PairedErrors:
    """Compare two regressors' predictions of the same targets, example by example."""
    if not (y.shape == candidate.shape == baseline.shape) or y.ndim != 1:
        raise ValueError("targets and both prediction vectors must be 1-D and of equal length")
    if y.shape[0] == 0:
        raise ValueError("cannot compare on zero examples")
    cand_abs, base_abs = np.abs(candidate - y), np.abs(baseline - y)
    diff = cand_abs - base_abs
    low, high = bootstrap_mean_ci(diff, resamples=resamples, seed=seed)
    stat, p = wilcoxon_signed_rank(diff)
    return PairedErrors(
        n=int(y.shape[0]),
        candidate_mae=float(cand_abs.mean()),
        baseline_mae=float(base_abs.mean()),
        delta=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        wilcoxon_statistic=stat,
        p_value=p,
    )


@dataclass(frozen=True)
class ErrorChange:
    """The regression change rule's outcome and the facts a reviewer reads."""

    passed: bool
    verdict: str
    facts: str


def judge_errors(
    c: PairedErrors, *, require: str, max_increase: float, alpha: float
) -> ErrorChange:
    """``require`` is ``not_worse`` (the interval's upper bound stays within ``max_increase`` of
    the baseline's MAE, and Wilcoxon finds no significant increase) or ``better`` (the whole
    interval below zero and Wilcoxon significant)."""
    margin = max_increase * c.baseline_mae
    facts = (
        f"MAE {c.candidate_mae:.4g} vs {c.baseline_mae:.4g}; mean |error| difference "
        f"{c.delta:+.4g}, 95% CI [{c.ci_low:+.4g}, {c.ci_high:+.4g}], Wilcoxon signed-rank "
        f"p={c.p_value:.4g} (n={c.n})"
    )
    significant = c.p_value < alpha
    if require == "better":
        ok = c.delta < 0 and significant and c.ci_high < 0
        verdict = (
            "significantly better than the baseline"
            if ok
            else "not significantly better than the baseline"
        )
        return ErrorChange(ok, verdict, facts)
    worse = c.delta > 0 and significant
    beyond = c.ci_high > margin
    if worse:
        verdict = f"significantly worse than the baseline (p < alpha={alpha})"
    elif beyond:
        verdict = (
            f"cannot rule out an MAE increase larger than the {max_increase * 100:.2f}% margin "
            f"({margin:.4g}; CI upper bound above it)"
        )
    else:
        verdict = "not significantly worse than the baseline"
    return ErrorChange(not worse and not beyond, verdict, facts)

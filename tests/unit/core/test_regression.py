"""The regression metrics and change rule, checked against known values and scipy/sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from pipelines.core.comparison import PairedErrors
from pipelines.core.regression import (
    compare_errors,
    judge_errors,
    regression_metrics,
    wilcoxon_signed_rank,
)
from pipelines.core.stats import bootstrap_mean_ci


def test_metrics_match_hand_computed_values() -> None:
    y = np.array([3.0, -0.5, 2.0, 7.0])
    pred = np.array([2.5, 0.0, 2.0, 8.0])
    m = regression_metrics(y, pred)
    # sklearn's documented examples: MSE 0.375, MAE 0.5, R² 0.9486081370449679.
    assert m.rmse == pytest.approx(np.sqrt(0.375))
    assert m.mae == pytest.approx(0.5)
    assert m.r2 == pytest.approx(0.9486081370449679)


def test_metrics_match_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=200)
    pred = y + rng.normal(scale=0.3, size=200)
    m = regression_metrics(y, pred)
    assert m.rmse == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert m.mae == pytest.approx(mean_absolute_error(y, pred))
    assert m.r2 == pytest.approx(r2_score(y, pred))


def test_r2_of_a_constant_target_is_zero_not_nan() -> None:
    assert regression_metrics(np.ones(4), np.array([1.0, 1.0, 2.0, 1.0])).r2 == 0.0


@pytest.mark.parametrize(
    ("y", "pred"), [(np.ones(3), np.ones(2)), (np.ones((2, 2)), np.ones((2, 2))), (np.ones(0),) * 2]
)
def test_metrics_refuse_mismatched_input(y: np.ndarray, pred: np.ndarray) -> None:
    with pytest.raises(ValueError, match="1-D"):
        regression_metrics(y, pred)


def test_wilcoxon_matches_scipy_and_a_published_example() -> None:
    # scipy's documented example: Darwin's cross- vs self-fertilised plant height differences
    # (Fisher), W = 24, two-sided exact p = 0.041259765625.
    d = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], dtype=float)
    stat, p = wilcoxon_signed_rank(d)
    ref = wilcoxon(d)
    assert (stat, p) == pytest.approx((float(ref.statistic), float(ref.pvalue)))
    assert stat == 24.0
    assert p == pytest.approx(0.04126, abs=1e-4)


def test_wilcoxon_of_identical_models_is_no_evidence() -> None:
    assert wilcoxon_signed_rank(np.zeros(5)) == (0.0, 1.0)


def test_bootstrap_interval_covers_the_mean_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(loc=0.2, scale=1.0, size=400)
    low, high = bootstrap_mean_ci(d, resamples=2000, seed=1)
    assert low < d.mean() < high
    assert (low, high) == bootstrap_mean_ci(d, resamples=2000, seed=1)
    # Against the normal approximation: mean +- 1.96 * sd / sqrt(n).
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    assert low == pytest.approx(d.mean() - half, abs=0.02)
    assert high == pytest.approx(d.mean() + half, abs=0.02)


def test_compare_errors_measures_absolute_error_differences() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    cand = np.array([0.5, 1.0, 2.5, 3.0])  # |e| = .5 0 .5 0
    base = np.array([0.0, 2.0, 2.0, 1.0])  # |e| = 0 1 0 2
    c = compare_errors(y, cand, base, resamples=500, seed=0)
    assert c.candidate_mae == pytest.approx(0.25)
    assert c.baseline_mae == pytest.approx(0.75)
    assert c.delta == pytest.approx(-0.5)
    assert c.n == 4


def _paired(delta: float, low: float, high: float, p: float) -> PairedErrors:
    return PairedErrors(200, 10 + delta, 10.0, delta, low, high, 1.0, p)


@pytest.mark.parametrize(
    ("c", "passed", "words"),
    [
        (_paired(0.0, -0.2, 0.2, 0.9), True, "not significantly worse"),
        (_paired(0.8, 0.3, 1.3, 0.001), False, "significantly worse"),
        # Not significant, but the interval reaches past 5% of MAE 10 = 0.5.
        (_paired(0.1, -0.4, 0.6, 0.4), False, "cannot rule out an MAE increase"),
    ],
)
def test_not_worse_rule(c: PairedErrors, passed: bool, words: str) -> None:
    out = judge_errors(c, require="not_worse", max_increase=0.05, alpha=0.05)
    assert out.passed is passed
    assert words in out.verdict
    assert "Wilcoxon" in out.facts


def test_better_rule_needs_the_whole_interval_below_zero_and_significance() -> None:
    good = _paired(-1.0, -1.5, -0.5, 0.001)
    assert judge_errors(good, require="better", max_increase=0.05, alpha=0.05).passed
    unsure = _paired(-1.0, -1.5, 0.1, 0.001)
    assert not judge_errors(unsure, require="better", max_increase=0.05, alpha=0.05).passed


def test_a_degraded_regressor_is_caught_end_to_end() -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(size=300)
    base = y + rng.normal(scale=0.2, size=300)
    cand = y + rng.normal(scale=0.4, size=300)
    c = compare_errors(y, cand, base, resamples=2000, seed=0)
    assert not judge_errors(c, require="not_worse", max_increase=0.05, alpha=0.05).passed
    same = compare_errors(y, base, base, resamples=2000, seed=0)
    assert judge_errors(same, require="not_worse", max_increase=0.05, alpha=0.05).passed

"""Slices: how the test set is cut, and each slice's verdict, from values."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.comparison import SliceResult
from pipelines.core.slices import (
    SliceSpec,
    cut,
    judge_classification,
    judge_regression,
)


def test_categorical_slices_hold_their_rows() -> None:
    col = np.array(["a", "b", "a", "c"])
    slices = cut(SliceSpec("store", values=("a", "b", "c")), col)
    assert [s.name for s in slices] == ["store=a", "store=b", "store=c"]
    assert slices[0].rows.tolist() == [True, False, True, False]


def test_numeric_bins_are_half_open_and_open_ended() -> None:
    col = np.array([-5.0, 0.0, 9.99, 10.0, 100.0])
    slices = cut(SliceSpec("age", bins=(0, 10)), col)
    assert [s.name for s in slices] == ["age in [-inf, 0)", "age in [0, 10)", "age in [10, inf)"]
    assert [int(s.rows.sum()) for s in slices] == [1, 2, 2]
    # Every row in exactly one slice.
    assert np.all(np.sum([s.rows for s in slices], axis=0) == 1)


def test_bins_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        cut(SliceSpec("age", bins=(10, 0)), np.zeros(3))


def _classification(cand_wrong_in_b: bool) -> list[SliceResult]:
    group = np.array(["a"] * 100 + ["b"] * 100 + ["c"] * 5)
    labels = np.zeros(205, dtype=np.int64)
    base = labels.copy()
    cand = labels.copy()
    if cand_wrong_in_b:
        cand[100:140] = 1  # slice b drops from 100% to 60%
    slices = cut(SliceSpec("g", values=("a", "b", "c")), group)
    return judge_classification(
        slices,
        labels,
        cand,
        base,
        min_rows=30,
        min_accuracy=0.5,
        max_drop=0.05,
        resamples=500,
        seed=0,
    )


def test_a_slice_that_got_worse_fails_while_the_others_pass() -> None:
    a, b, c = _classification(cand_wrong_in_b=True)
    assert a.passed
    assert a.judged
    assert not b.passed
    assert "CI low" in b.reason
    assert c.judged is False
    assert c.passed
    assert "too small to judge (5 rows < 30)" in c.reason


def test_slices_pass_when_nothing_changed() -> None:
    assert all(r.passed for r in _classification(cand_wrong_in_b=False))


def test_regression_slices_check_mae_and_paired_errors() -> None:
    rng = np.random.default_rng(0)
    group = np.array(["x"] * 150 + ["y"] * 150)
    y = rng.normal(size=300)
    base = y + rng.normal(scale=0.1, size=300)
    cand = base.copy()
    cand[150:] = y[150:] + rng.normal(scale=0.5, size=150)  # worse on y only
    slices = cut(SliceSpec("g", values=("x", "y")), group)
    x_res, y_res = judge_regression(
        slices,
        y,
        cand,
        base,
        min_rows=30,
        max_mae=1.0,
        max_increase=0.05,
        alpha=0.05,
        resamples=500,
        seed=0,
    )
    assert x_res.passed
    assert not y_res.passed
    assert "worse" in y_res.reason
    lax = judge_regression(
        slices,
        y,
        cand,
        None,
        min_rows=30,
        max_mae=0.01,
        max_increase=0.05,
        alpha=0.05,
        resamples=500,
        seed=0,
    )
    assert all(not r.passed and "MAE" in r.reason for r in lax)
    assert all(r.baseline is None for r in lax)

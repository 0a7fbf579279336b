from math import comb

import numpy as np
import pytest

from pipelines.core.stats import compare_paired, mcnemar_exact, paired_bootstrap_ci


def exact_two_sided(b: int, c: int) -> float:
    n, k = b + c, min(b, c)
    outcomes: int = 2**n  # int ** int is typed Any (a negative exponent gives a float)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / outcomes)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (1, 9, 0.021484375),  # 2 * (C(10,0) + C(10,1)) / 2^10
        (0, 5, 0.0625),  # 2 / 2^5
        (5, 5, 1.0),
        (0, 0, 1.0),  # no discordant pairs: no evidence either way
        (3, 12, exact_two_sided(3, 12)),
    ],
)
def test_mcnemar_exact_known_values(b: int, c: int, expected: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_is_symmetric() -> None:
    assert mcnemar_exact(2, 11) == mcnemar_exact(11, 2)


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact(-1, 3)


def test_bootstrap_of_identical_models_is_zero() -> None:
    ok = np.array([True, False, True, True])
    assert paired_bootstrap_ci(ok, ok, resamples=500, seed=1) == (0.0, 0.0)


def test_bootstrap_is_seeded_and_covers_the_delta() -> None:
    rng = np.random.default_rng(7)
    cand = rng.random(400) < 0.9
    base = rng.random(400) < 0.8
    first = paired_bootstrap_ci(cand, base, resamples=2000, seed=3)
    assert first == paired_bootstrap_ci(cand, base, resamples=2000, seed=3)
    delta = cand.mean() - base.mean()
    assert first[0] < delta < first[1]
    # The normal approximation of the paired delta's standard error gives the scale to expect.
    d = cand.astype(float) - base.astype(float)
    half_width = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert (first[1] - first[0]) / 2 == pytest.approx(half_width, rel=0.15)


def test_compare_paired_counts_discordant_pairs() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5], dtype=np.int64)
    cand = np.array([0, 1, 2, 3, 9, 9], dtype=np.int64)  # right on 4
    base = np.array([0, 9, 9, 3, 4, 9], dtype=np.int64)  # right on 3
    cmp = compare_paired(labels, cand, base, resamples=200, seed=0)
    assert (cmp.b, cmp.c) == (2, 1)
    assert cmp.delta == pytest.approx(1 / 6)
    assert cmp.p_value == pytest.approx(1.0)
    assert cmp.n == 6


def test_compare_paired_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="equal length"):
        compare_paired(
            np.zeros(3, np.int64),
            np.zeros(3, np.int64),
            np.zeros(2, np.int64),
            resamples=100,
            seed=0,
        )

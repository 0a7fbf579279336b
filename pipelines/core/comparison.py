"""The results of paired comparisons and slices, apart from the statistics that compute them.

Kept free of numpy and scipy: the gate's blessing record (pipelines/evidence.py) holds this
dataclass as it is, and `mlops report` reads that record with only the `report` extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PairedComparison:
    """Candidate against baseline on the same examples: accuracies, delta with CI, discordance."""

    n: int
    candidate_accuracy: float
    baseline_accuracy: float
    delta: float
    ci_low: float
    ci_high: float
    # Discordant pairs: b = candidate right where baseline wrong, c = the reverse.
    b: int
    c: int
    p_value: float


@dataclass(frozen=True)
class PairedErrors:
    """Regression: candidate against baseline on the same examples: MAEs, the mean difference
    in absolute error with its interval (positive: the candidate errs more), and Wilcoxon's
    signed-rank test of it."""

    n: int
    candidate_mae: float
    baseline_mae: float
    delta: float
    ci_low: float
    ci_high: float
    wilcoxon_statistic: float
    p_value: float


@dataclass(frozen=True)
class SliceResult:
    """One slice's verdict. ``judged`` is False when the slice had too few rows to judge.
    ``candidate`` and ``baseline`` are its accuracy (classification) or MAE (regression)."""

    name: str
    n: int
    candidate: float
    baseline: float | None
    judged: bool
    passed: bool
    reason: str

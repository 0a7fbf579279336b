"""The result of a paired comparison, apart from the statistics that compute it.

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

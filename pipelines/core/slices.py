"""Slices (TFMA's idea): the same test set cut by a feature's values, each cut judged on its own.

A model can improve on average and get worse for one group: one store, one product line, the
youngest customers. A slice is the rows whose feature holds one categorical value, or whose
numeric value falls in one bin [edge_i, edge_i+1). Each slice gets the absolute minimum and the
paired not-worse check against the baseline, on its own rows only. A slice with fewer rows than
``min_rows`` is reported as too small to judge, explicitly, rather than passed or failed on noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from pipelines.core.comparison import SliceResult
from pipelines.core.regression import compare_errors, judge_errors
from pipelines.core.stats import compare_paired


@dataclass(frozen=True)
class SliceSpec:
    """Slice by ``feature``: by each of ``values`` (categorical), or by ``bins`` (sorted edges,
    numeric; values outside the outer edges fall in open-ended first and last slices)."""

    feature: str
    values: tuple[str | int | bool, ...] = ()
    bins: tuple[float, ...] = ()


@dataclass(frozen=True)
class Slice:
    """One slice's name (``feature=value`` or ``feature in [a, b)``) and its rows."""

    name: str
    rows: NDArray[np.bool_]


def cut(spec: SliceSpec, column: NDArray[np.generic]) -> list[Slice]:
    """The slices of ``column`` (one feature's test values) that ``spec`` defines."""
    if spec.values:
        return [Slice(f"{spec.feature}={v}", column == v) for v in spec.values]
    edges = list(spec.bins)
    if len(edges) < 1 or edges != sorted(set(edges)):
        raise ValueError(f"slice bins of {spec.feature} must be strictly increasing")
    numeric = column.astype(np.float64)
    bounds = [-np.inf, *edges, np.inf]
    return [
        Slice(f"{spec.feature} in [{_edge(lo)}, {_edge(hi)})", (numeric >= lo) & (numeric < hi))
        for lo, hi in pairwise(bounds)
    ]


def _edge(x: float) -> str:
    return "-inf" if x == -np.inf else "inf" if x == np.inf else f"{x:g}"


def _too_small(s: Slice, n: int, min_rows: int, value: float) -> SliceResult:
    return SliceResult(
        s.name,
        n,
        value,
        None,
        judged=False,
        passed=True,
        reason=f"{s.name}: too small to judge ({n} rows < {min_rows})",
    )


def judge_classification(
    slices: Sequence[Slice],
    labels: NDArray[np.int64],
    candidate: NDArray[np.int64],
    baseline: NDArray[np.int64] | None,
    *,
    min_rows: int,
    min_accuracy: float,
    max_drop: float,
    resamples: int,
    seed: int,
) -> list[SliceResult]:
    """Each slice's accuracy against ``min_accuracy``, and the lower bound of its paired
    accuracy delta's 95% interval against ``-max_drop``."""
    out: list[SliceResult] = []
    for s in slices:
        n = int(s.rows.sum())
        acc = float((candidate[s.rows] == labels[s.rows]).mean()) if n else 0.0
        if n < min_rows:
            out.append(_too_small(s, n, min_rows, acc))
            continue
        problems = [f"accuracy {acc:.2%} < {min_accuracy:.2%}"] if acc < min_accuracy else []
        base = None
        if baseline is not None:
            c = compare_paired(
                labels[s.rows], candidate[s.rows], baseline[s.rows], resamples=resamples, seed=seed
            )
            base = c.baseline_accuracy
            if c.ci_low < -max_drop:
                problems.append(
                    f"accuracy delta {c.delta:+.2%}, 95% CI low {c.ci_low:+.2%} < -{max_drop:.2%}"
                )
        facts = f"{s.name}: n={n}, accuracy {acc:.2%}" + (
            f" (baseline {base:.2%})" if base is not None else ""
        )
        out.append(_result(s, n, acc, base, facts, problems))
    return out


def judge_regression(
    slices: Sequence[Slice],
    y: NDArray[np.float64],
    candidate: NDArray[np.float64],
    baseline: NDArray[np.float64] | None,
    *,
    min_rows: int,
    max_mae: float | None,
    max_increase: float,
    alpha: float,
    resamples: int,
    seed: int,
) -> list[SliceResult]:
    """Each slice's MAE against ``max_mae``, and the paired not-worse rule on its rows."""
    out: list[SliceResult] = []
    for s in slices:
        n = int(s.rows.sum())
        mae = float(np.abs(candidate[s.rows] - y[s.rows]).mean()) if n else 0.0
        if n < min_rows:
            out.append(_too_small(s, n, min_rows, mae))
            continue
        problems = (
            [f"MAE {mae:.4g} > {max_mae:.4g}"] if max_mae is not None and mae > max_mae else []
        )
        base = None
        if baseline is not None:
            c = compare_errors(
                y[s.rows], candidate[s.rows], baseline[s.rows], resamples=resamples, seed=seed
            )
            base = c.baseline_mae
            change = judge_errors(c, require="not_worse", max_increase=max_increase, alpha=alpha)
            if not change.passed:
                problems.append(change.verdict)
        facts = f"{s.name}: n={n}, MAE {mae:.4g}" + (
            f" (baseline {base:.4g})" if base is not None else ""
        )
        out.append(_result(s, n, mae, base, facts, problems))
    return out


def _result(
    s: Slice, n: int, value: float, base: float | None, facts: str, problems: list[str]
) -> SliceResult:
    reason = f"{facts}: " + (
        "; ".join(problems) if problems else "meets its minimum and is not worse"
    )
    return SliceResult(s.name, n, value, base, judged=True, passed=not problems, reason=reason)

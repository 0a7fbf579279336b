"""The reference profile: what production inputs and predictions should look like, and the
thresholds past which they no longer do. Pure: arrays in, arrays and numbers out; a fixed seed
gives the same profile every time.

Thresholds are calibrated, not guessed (the idea of alibi-detect's calibrated detectors, done
offline): windows of the size the live rules will look at are drawn from held-out data, and
each threshold sits at the quantile that reference-like windows exceed at the configured
false-alarm rate. A live statistic *above* its threshold alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# prediction_bins is the server's own (it counts live predictions with it), re-exported here
# beside prediction_edges.
from pipelines.serving.reference import anomaly_scores
from pipelines.serving.reference import prediction_bins as prediction_bins

F64 = NDArray[np.float64]
# A class never seen in a window (or in the reference) would make PSI infinite; its share is
# counted as this instead. The rendered rules use the same floor.
PSI_FLOOR = 1e-4
BINS = 10  # quantile bins per feature (deciles)


@dataclass(frozen=True)
class FeatureProfile:
    """Per feature: the reference mean, floored standard deviation and quantile edges."""

    mean: F64
    stddev: F64  # floored: a constant feature would otherwise divide by zero
    bins: F64  # (features, BINS + 1) quantile edges


@dataclass(frozen=True)
class Gaussian:
    """The shrunk multivariate Gaussian that scores how unusual an instance is."""

    center: F64
    precision: F64  # inverse of the shrunk covariance
    shrinkage: float


@dataclass(frozen=True)
class AnomalyThreshold:
    """Epsilon on the anomaly score, and the share of held-out rows above it."""

    threshold: float  # epsilon on the Mahalanobis distance
    held_out_rate: float  # share of held-out rows above it


@dataclass(frozen=True)
class DriftThresholds:
    """The calibrated drift thresholds, one per statistic the rules compare."""

    feature_effect: float
    drifted_fraction: float
    prediction_psi: float


def feature_profile(x: F64, stddev_floor: float) -> FeatureProfile:
    """Mean, floored standard deviation and quantile edges of each column of ``x``."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError("need a 2-D array with at least two rows")
    if stddev_floor <= 0:
        raise ValueError("the stddev floor must be positive")
    edges = np.quantile(x, np.linspace(0.0, 1.0, BINS + 1), axis=0).T
    return FeatureProfile(
        mean=x.mean(axis=0),
        stddev=np.maximum(x.std(axis=0, ddof=1), stddev_floor),
        bins=np.ascontiguousarray(edges),
    )


def class_ratio(predicted: NDArray[np.int64], n_classes: int) -> F64:
    """The share of each class (by index) among ``predicted``."""
    counts = np.bincount(predicted, minlength=n_classes).astype(np.float64)
    ratio: F64 = counts / max(predicted.shape[0], 1)
    return ratio


def prediction_edges(values: F64, bins: int = BINS) -> F64:
    """A regressor's predicted values cut into ``bins`` quantile bins: the inner edges (at most
    ``bins - 1``; repeated quantiles merged). Bin i holds values in [edge_i-1, edge_i); the
    shares of these bins are monitored the way a classifier's class shares are."""
    if values.ndim != 1 or values.shape[0] < 2:
        raise ValueError("need at least two predicted values")
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges: F64 = np.unique(inner)
    return edges


def fit_gaussian(x: F64) -> Gaussian:
    """A multivariate Gaussian with Ledoit-Wolf shrinkage toward a scaled identity, so constant
    features (zero variance) still leave the covariance invertible."""
    from sklearn.covariance import LedoitWolf  # imported when a profile is made, not at start-up

    fitted = LedoitWolf().fit(x)
    return Gaussian(
        center=np.asarray(fitted.location_, dtype=np.float64),
        precision=np.asarray(fitted.precision_, dtype=np.float64),
        shrinkage=float(fitted.shrinkage_),
    )


def anomaly_threshold(
    gaussian: Gaussian, held_out: F64, false_alarm_rate: float
) -> AnomalyThreshold:
    """Epsilon at the (1 - rate) quantile of held-out scores: reference-like instances exceed it
    at about that rate."""
    scores = anomaly_scores(held_out, gaussian.center, gaussian.precision)
    eps = float(np.quantile(scores, 1.0 - false_alarm_rate))
    return AnomalyThreshold(eps, float(np.mean(scores > eps)))


def psi(window_ratio: F64, reference_ratio: F64) -> F64:
    """Population stability index of each row of ``window_ratio`` against the reference."""
    q = np.maximum(window_ratio, PSI_FLOOR)
    p = np.maximum(reference_ratio, PSI_FLOOR)
    out: F64 = np.sum((q - p) * np.log(q / p), axis=-1)
    return out


def window_statistics(
    x: F64,
    predicted: NDArray[np.int64],
    reference: FeatureProfile,
    reference_ratio: F64,
    idx: NDArray[np.int64],
) -> tuple[F64, F64]:
    """For windows given as row indices ``idx`` (windows, size): each window's per-feature
    effect |mean - reference mean| / stddev, shape (windows, features), and its prediction PSI."""
    means = x[idx].mean(axis=1)
    effects = np.abs(means - reference.mean) / reference.stddev
    n_classes = reference_ratio.shape[0]
    counts = np.stack([np.bincount(row, minlength=n_classes) for row in predicted[idx]])
    return effects, psi(counts / idx.shape[1], reference_ratio)


def drift_thresholds(
    x: F64,
    predicted: NDArray[np.int64],
    reference: FeatureProfile,
    reference_ratio: F64,
    *,
    window: int,
    windows: int,
    false_alarm_rate: float,
    seed: int,
) -> DriftThresholds:
    """Bootstrap ``windows`` windows of ``window`` held-out rows (with replacement) and put each
    threshold at its (1 - rate) quantile over them. The feature-effect threshold is the quantile
    over every (window, feature) pair, so each feature alone is over it at about that rate; the
    drifted fraction counts the features over it per window."""
    if x.shape[0] != predicted.shape[0] or x.shape[0] == 0:
        raise ValueError("need as many predictions as held-out rows, and at least one")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(windows, window))
    effects, window_psi = window_statistics(x, predicted, reference, reference_ratio, idx)
    level = 1.0 - false_alarm_rate
    feature_effect = float(np.quantile(effects, level))
    drifted = np.mean(effects > feature_effect, axis=1)
    return DriftThresholds(
        feature_effect=feature_effect,
        drifted_fraction=float(np.quantile(drifted, level)),
        prediction_psi=float(np.quantile(window_psi, level)),
    )

"""The release's reference profile as the server reads it: what reference-like traffic looks
like, and the anomaly score of an instance.

train writes the profile (``profile.json``, evidence.Profile); package ships it beside the model
and records its sha256 in the signature. This module reads that JSON with the standard library
and numpy only (the image has no pydantic). ``anomaly_scores`` is the one definition of the
score: train calibrates its threshold with it and the server computes it per request, so the
two cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

PROFILE = "profile.json"


def anomaly_scores(
    x: NDArray[np.float64], center: NDArray[np.float64], precision: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Each row's Mahalanobis distance from ``center`` under ``precision`` (the inverse of the
    shrunk covariance): one matrix product per batch, whatever its size."""
    diff = x - center
    squared = np.einsum("ij,ij->i", diff @ precision, diff)
    # Rounding can make a distance of ~0 slightly negative.
    distances: NDArray[np.float64] = np.sqrt(np.maximum(squared, 0.0))
    return distances


def prediction_bins(values: NDArray[np.floating], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """The bin (0..len(edges)) of each of a regressor's predicted values, by the profile's inner
    ``edges`` (core/profile.prediction_edges): bin i holds [edge i-1, edge i). The one
    definition: train computes the profile's bin shares with it, the server counts with it."""
    out: NDArray[np.int64] = np.searchsorted(edges, values, side="right").astype(np.int64)
    return out


@dataclass(frozen=True)
class Reference:
    """The parts of the profile the server exports or uses per request."""

    features: list[str]
    mean: list[float]
    stddev: list[float]
    classes: list[int]
    class_ratio: list[float]
    center: NDArray[np.float64]
    precision: NDArray[np.float64]
    anomaly_threshold: float
    anomaly_rate: float
    window_instances: int
    # statistic -> threshold: feature_effect, drifted_fraction, prediction_psi
    drift_thresholds: dict[str, float]
    # A regressor's inner edges of the bins of its predicted value, whose shares ``classes``
    # and ``class_ratio`` hold; empty for a classifier (its profile has no such key).
    prediction_edges: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))

    def scores(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The anomaly score of each row of ``x``."""
        return anomaly_scores(x, self.center, self.precision)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Reference:
        """The reference from profile.json's decoded document."""
        anomaly, drift = doc["anomaly"], doc["drift"]
        return cls(
            features=list(doc["features"]),
            mean=[float(v) for v in doc["mean"]],
            stddev=[float(v) for v in doc["stddev"]],
            classes=[int(c) for c in doc["classes"]],
            class_ratio=[float(v) for v in doc["class_ratio"]],
            center=np.asarray(anomaly["center"], dtype=np.float64),
            precision=np.asarray(anomaly["precision"], dtype=np.float64),
            anomaly_threshold=float(anomaly["threshold"]),
            anomaly_rate=float(anomaly["false_alarm_rate"]),
            window_instances=int(drift["window_instances"]),
            drift_thresholds={
                k: float(drift[k]) for k in ("feature_effect", "drifted_fraction", "prediction_psi")
            },
            prediction_edges=np.asarray(doc.get("prediction_edges", []), dtype=np.float64),
        )


def load_reference(path: Path, sha256: str) -> Reference:
    """The profile at ``path``, refused (ValueError) unless it is the file the signature names."""
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise ValueError(f"{path} has sha256 {got}, the signature records {sha256}")
    return Reference.from_doc(json.loads(data))

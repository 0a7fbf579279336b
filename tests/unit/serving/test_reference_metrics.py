"""The server's reference gauges and anomaly series on a synthetic two-feature profile."""

from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.serving.contract import Metric
from pipelines.serving.reference import Reference
from pipelines.serving.telemetry import Metrics

EPS = 2.0


def _reference() -> Reference:
    return Reference(
        features=["a", "b"],
        mean=[0.0, 0.0],
        stddev=[1.0, 0.5],
        classes=[0, 1],
        class_ratio=[0.4, 0.6],
        center=np.zeros(2),
        precision=np.eye(2),
        anomaly_threshold=EPS,
        anomaly_rate=0.01,
        window_instances=200,
        drift_thresholds={"feature_effect": 0.3, "drifted_fraction": 0.1, "prediction_psi": 0.02},
    )


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    ident = {"model": "m", "release": "r", "color": "blue"}
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            extra = {k: v for k, v in s.labels.items() if k not in ident}
            assert {k: s.labels[k] for k in ident} == ident, s
            out[(s.name, tuple(sorted(extra.items())))] = s.value
    return out


def test_scores_fold_into_an_exact_histogram_and_counter_at_scrape_time() -> None:
    metrics = Metrics("m", "r", "blue", ["a", "b"], [0, 1], _reference())
    # Distances 0, 1, 2 (on epsilon: not an anomaly), 5: one request of three, one of one.
    metrics.inputs.observe(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    metrics.inputs.observe(np.array([[3.0, 4.0]]))
    got = _samples(metrics)
    bucket = f"{Metric.ANOMALY_SCORE}_bucket"
    assert got[(bucket, (("le", repr(0.25 * EPS)),))] == 1
    assert got[(bucket, (("le", repr(0.5 * EPS)),))] == 2
    assert got[(bucket, (("le", repr(1.0 * EPS)),))] == 3
    assert got[(bucket, (("le", repr(4.0 * EPS)),))] == 4
    assert got[(bucket, (("le", "+Inf"),))] == 4
    assert got[(f"{Metric.ANOMALY_SCORE}_count", ())] == 4
    assert got[(f"{Metric.ANOMALY_SCORE}_sum", ())] == 8.0
    assert got[(Metric.ANOMALIES, ())] == 1
    assert got[(Metric.INSTANCES, ())] == 4
    assert got[(Metric.REFERENCE_FEATURE_STDDEV, (("feature", "b"),))] == 0.5
    assert got[(Metric.REFERENCE_CLASS_RATIO, (("class", "1"),))] == 0.6
    assert got[(Metric.REFERENCE_DRIFT_THRESHOLD, (("statistic", "prediction_psi"),))] == 0.02
    assert got[(Metric.REFERENCE_WINDOW_INSTANCES, ())] == 200
    assert got[(Metric.REFERENCE_ANOMALY_THRESHOLD, ())] == EPS
    assert got[(Metric.REFERENCE_ANOMALY_RATE, ())] == 0.01


def test_without_a_profile_there_are_no_reference_or_anomaly_series() -> None:
    metrics = Metrics("m", "r", "blue", ["a", "b"], [0, 1])
    metrics.inputs.observe(np.array([[3.0, 4.0]]))
    names = {name for name, _ in _samples(metrics)}
    assert Metric.INSTANCES in names
    assert not [n for n in names if n.startswith(("mlops_reference_", "mlops_anomal"))]


def test_exported_names_are_the_contracts() -> None:
    metrics = Metrics("m", "r", "blue", ["a", "b"], [0, 1], _reference())
    metrics.request("predict", 200, 0.001)
    metrics.predicted(np.array([1]))
    metrics.ready.set(1)
    metrics.info.labels("m", "r", "blue", "sha").set(1)
    names = {name for name, _ in _samples(metrics)}
    for metric in Metric:
        histogram = {f"{metric}_bucket", f"{metric}_count", f"{metric}_sum"}
        assert metric in names or histogram <= names, metric

"""promtool unit tests for the rendered alerts, generated from traffic scenarios.

Each scenario is a stretch of synthetic scrapes (one a minute) of one release: the reference
gauges it exports, and its counters growing at the rates a phase of traffic gives. Phases are
reference-like, then faulty, then reference-like again, so one scenario checks that an alert is
quiet before the fault, fires during it and resolves after it. ``write`` writes the promtool test
file (``promtool test rules``) next to the rule file it tests.

The series names come from the serving contract, like the rules' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipelines.serving.contract import Metric

NAMESPACE = "mlops-staging"
ENVIRONMENT = "staging"
RELEASE = {"model": "digits", "release": "digits-000000000002", "color": "green"}
TARGET = {"namespace": NAMESPACE, **RELEASE, "pod": "digits-green-7d9f-abcde"}
# The reference the release exports: two features, two classes.
MEAN, STDDEV = 5.0, 2.0
CLASSES = {"0": 0.5, "1": 0.5}
THRESHOLDS = {"feature_effect": 0.5, "drifted_fraction": 0.4, "prediction_psi": 0.2}
WINDOW_INSTANCES = 300
ANOMALY_RATE = 0.01
LATENCY_BUCKETS = ("0.01", "0.05", "0.1", "+Inf")


@dataclass(frozen=True)
class Traffic:
    """What one minute of traffic looks like; the reference-like defaults never alarm."""

    # Per minute: 1000 in a 10 m window, 500 in a 5 m one; both above WINDOW_INSTANCES.
    instances: float = 100.0
    feature_mean: float = MEAN
    feature_var: float = STDDEV**2
    class_shares: tuple[float, float] = (0.5, 0.5)
    anomaly_share: float = ANOMALY_RATE
    errors_share: float = 0.0
    latency_bucket: str = "0.01"  # the smallest bucket every request falls in
    up: bool = True  # the target answers scrapes
    ready: bool = True  # the server reports its model loaded


@dataclass(frozen=True)
class Phase:
    minutes: int
    traffic: Traffic = field(default_factory=Traffic)


def _series(labels: dict[str, str], name: str, values: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def _num(x: float) -> str:
    return f"{x:.12g}"


def counter(phases: Sequence[tuple[int, float]]) -> str:
    """promtool's expanding notation for a counter growing ``rate`` a minute for ``minutes``,
    phase after phase: ``a+bxn`` gives n + 1 values, so later phases start one step on."""
    value, parts = 0.0, []
    for i, (minutes, rate) in enumerate(phases):
        start, steps = (value, minutes) if i == 0 else (value + rate, minutes - 1)
        parts.append(f"{_num(start)}+{_num(rate)}x{steps}")
        value += rate * minutes
    return " ".join(parts)


def gauge(value: float, minutes: int) -> str:
    return f"{_num(value)}x{minutes}"


def _flag(phases: Sequence[Phase], attr: str) -> str:
    values = [("1" if getattr(p.traffic, attr) else "0", p.minutes) for p in phases]
    first, *rest = values
    return " ".join([f"{first[0]}x{first[1]}", *(f"{v}x{m - 1}" for v, m in rest)])


def _rates(phases: Sequence[Phase], per_minute: Any) -> str:
    return counter([(p.minutes, float(per_minute(p.traffic))) for p in phases])


def input_series(phases: Sequence[Phase]) -> list[dict[str, str]]:
    total = sum(p.minutes for p in phases)
    out = [
        _series(TARGET, Metric.READY, _flag(phases, "ready")),
        _series(TARGET, Metric.REFERENCE_WINDOW_INSTANCES, gauge(WINDOW_INSTANCES, total)),
        _series(TARGET, Metric.REFERENCE_ANOMALY_RATE, gauge(ANOMALY_RATE, total)),
        _series(TARGET, Metric.INSTANCES, _rates(phases, lambda t: t.instances)),
        _series(TARGET, Metric.ANOMALIES, _rates(phases, lambda t: t.instances * t.anomaly_share)),
        _series({**TARGET, "instance": "10.0.0.7:8080", "job": "x"}, "up", _flag(phases, "up")),
    ]
    for stat, value in THRESHOLDS.items():
        labels = {**TARGET, "statistic": stat}
        out.append(_series(labels, Metric.REFERENCE_DRIFT_THRESHOLD, gauge(value, total)))
    for feature in ("pixel_0", "pixel_1"):
        labels = {**TARGET, "feature": feature}
        out += [
            _series(labels, Metric.REFERENCE_FEATURE_MEAN, gauge(MEAN, total)),
            _series(labels, Metric.REFERENCE_FEATURE_STDDEV, gauge(STDDEV, total)),
            _series(
                labels, Metric.FEATURE_SUM, _rates(phases, lambda t: t.instances * t.feature_mean)
            ),
            _series(
                labels,
                Metric.FEATURE_SQUARES,
                _rates(phases, lambda t: t.instances * (t.feature_var + t.feature_mean**2)),
            ),
        ]
    for i, (cls, ratio) in enumerate(CLASSES.items()):
        labels = {**TARGET, "class": cls}
        out += [
            _series(labels, Metric.REFERENCE_CLASS_RATIO, gauge(ratio, total)),
            _series(
                labels,
                Metric.PREDICTIONS,
                _rates(phases, lambda t, i=i: t.instances * t.class_shares[i]),
            ),
        ]
    return out + _request_series(phases)


def _request_series(phases: Sequence[Phase]) -> list[dict[str, str]]:
    # One request per instance; errors are 500s.
    predict = {**TARGET, "route": "predict"}
    out = [
        _series(
            {**predict, "code": "200"},
            Metric.REQUESTS,
            _rates(phases, lambda t: t.instances * (1 - t.errors_share)),
        ),
        _series(
            {**predict, "code": "500"},
            Metric.REQUESTS,
            _rates(phases, lambda t: t.instances * t.errors_share),
        ),
    ]
    for le in LATENCY_BUCKETS:
        out.append(
            _series(
                {**predict, "le": le},
                f"{Metric.LATENCY}_bucket",
                _rates(
                    phases,
                    lambda t, le=le: t.instances * _below(t.latency_bucket, le),
                ),
            )
        )
    return out


def _below(bucket: str, le: str) -> int:
    return int(LATENCY_BUCKETS.index(bucket) <= LATENCY_BUCKETS.index(le))


def alert_labels(alert: str, severity: str, rollback: bool) -> dict[str, str]:
    labels = {
        "alertname": alert,
        "alertstate": "firing",
        "namespace": NAMESPACE,
        **RELEASE,
        "environment": ENVIRONMENT,
        "severity": severity,
    }
    return {**labels, "action": "rollback"} if rollback else labels


def firing(alert: str, at: str, labels: dict[str, str] | None) -> dict[str, Any]:
    """A check that ``alert`` is firing with ``labels`` at ``at`` (None: neither firing nor
    pending). ALERTS carries every label an alert has, and no annotation."""
    expected = [] if labels is None else [{"labels": _selector("ALERTS", labels), "value": 1}]
    return {"expr": f'ALERTS{{alertname="{alert}"}}', "eval_time": at, "exp_samples": expected}


def _selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True)
class Case:
    """One alert's life: quiet on reference-like traffic, firing on the fault, resolved after."""

    alert: str
    severity: str
    rollback: bool
    fault: Traffic
    quiet_at: tuple[str, ...] = ("30m", "59m")
    firing_at: tuple[str, ...] = ("95m", "119m")
    resolved_at: tuple[str, ...] = ("170m", "239m")
    why: str = "its fault"

    def phases(self) -> list[Phase]:
        return [Phase(60), Phase(60, self.fault), Phase(120)]

    def test(self) -> dict[str, Any]:
        labels = alert_labels(self.alert, self.severity, self.rollback)
        checks = [firing(self.alert, t, None) for t in self.quiet_at]
        checks += [firing(self.alert, t, labels) for t in self.firing_at]
        checks += [firing(self.alert, t, None) for t in self.resolved_at]
        return {
            "name": f"{self.alert}: quiet, fires on {self.why}, resolves",
            "interval": "1m",
            "input_series": input_series(self.phases()),
            "promql_expr_test": checks,
        }


def cases(rollback: bool) -> list[Case]:
    """One or more per alert; ``rollback``: the environment allows automatic rollback."""
    shifted = MEAN + 1.5 * STDDEV  # effect size 1.5, three times the calibrated threshold
    return [
        Case("ModelInputDrift", "warning", rollback, Traffic(feature_mean=shifted)),
        Case("ModelPredictionDrift", "warning", rollback, Traffic(class_shares=(0.9, 0.1))),
        Case("ModelInputAnomalies", "warning", False, Traffic(anomaly_share=0.1)),
        Case("ModelLatencyHigh", "warning", False, Traffic(latency_bucket="0.1")),
        Case("ModelErrorRate", "critical", rollback, Traffic(errors_share=0.2)),
        Case("ModelDown", "critical", rollback, Traffic(up=False), why="targets down"),
        Case("ModelDown", "critical", rollback, Traffic(ready=False), why="model not ready"),
    ]


def quiet_cases() -> list[dict[str, Any]]:
    """Traffic that must alarm nobody: reference-like for four hours, and drifted traffic too
    thin for the window the thresholds were calibrated on."""
    names = [c.alert for c in cases(False)]
    every = ("15m", "60m", "120m", "239m")
    reference = [Phase(240)]
    thin = [Phase(60), Phase(180, Traffic(instances=20, feature_mean=MEAN + 3 * STDDEV))]
    return [
        {
            "name": name,
            "interval": "1m",
            "input_series": input_series(phases),
            "promql_expr_test": [firing(a, t, None) for a in names for t in every],
        }
        for name, phases in (
            ("reference-like traffic alarms nobody", reference),
            ("drift below the calibrated window size is not drift", thin),
        )
    ]


def write(rule_file: str, path: Any, rollback: bool) -> None:
    """The promtool test file for ``rule_file`` (a path relative to ``path``'s folder)."""
    doc = {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [c.test() for c in cases(rollback)] + quiet_cases(),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))

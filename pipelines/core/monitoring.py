"""Monitoring objects for one model in one environment: the PrometheusRule (recording rules and
alerts), the PodMonitor that scrapes every pod of both colors, and the Grafana dashboard.

Every series name comes from the serving contract (``contract.Metric``), so the rules cannot
drift from what the server exports. The rules are generic: the release's reference profile and
its calibrated thresholds are gauges the server exports, and the rules join the live signals
on them by (namespace, model, release, color). Windows and durations come from
``RuleSettings``, so tests and the local loop can shrink them.

Pure: builds dicts, reads nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.serving import contract
from pipelines.serving.contract import Metric

# The labels every recorded series and every alert is grouped by: the series' own (model,
# release, color) and the namespace the scrape adds, which tells environments sharing one
# Prometheus apart.
GROUP = ("namespace", *contract.LABELS)
SEVERITIES = ("critical", "warning", "info")
Severity = Literal["critical", "warning", "info"]
# What each alert must carry (checked by the policy on every rendered PrometheusRule).
ALERT_LABELS = ("environment", "severity")
ALERT_ANNOTATIONS = ("summary", "description", "runbook_url")
RUNBOOK_SECTION = "monitoring-and-automatic-rollback"
# The alerts that justify an automatic rollback where the environment allows one: the release
# itself is the likely cause. Latency and anomalies are not: slow answers are usually load or
# capacity, and anomalous instances are usually a client's; the previous release would see the
# same.
ROLLBACK_ALERTS = ("ModelInputDrift", "ModelPredictionDrift", "ModelErrorRate", "ModelDown")
# A floor for shares in the PSI, so that a class absent from the window (or the reference) gives
# a large, finite term instead of ln(0).
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class RuleSettings:
    """What the rules are tuned with. The defaults are production's; tests shrink the windows.

    ``latency_p99_ms`` is the serving SLO: model.yaml's ``monitoring.latency_p99_ms`` fills it
    (see ``settings_for``)."""

    window: str = "10m"  # the range of every rate: what "the window" means in the rules
    drift_for: str = "10m"
    drift_keep_firing_for: str = "15m"
    anomaly_for: str = "10m"
    latency_for: str = "10m"
    errors_for: str = "5m"
    down_for: str = "3m"
    keep_firing_for: str = "5m"
    latency_p99_ms: float = 25.0  # model.yaml's default (config/schema.py)
    max_error_ratio: float = 0.05  # share of predict requests answered 5xx
    min_requests: int = 20  # below this many predict requests in the window, ratios are noise
    # One-sided z of the anomaly-rate test (about 1 false alarm in 1000 windows): the window's
    # anomaly share alarms above p + z * sqrt(p (1 - p) / n).
    anomaly_z: float = 3.09
    runbook: str = "README.md"  # where the runbook section lives; a URL in a fork's config
    evaluation_interval: str = "1m"


def settings_for(latency_p99_ms: float | None = None) -> RuleSettings:
    """The production settings, with the model's SLO where it states one."""
    if latency_p99_ms is None:
        return RuleSettings()
    return RuleSettings(latency_p99_ms=latency_p99_ms)


@dataclass(frozen=True)
class Scope:
    """Whose series a rule group reads and which labels its results carry."""

    environment: str
    namespace: str
    model: str
    auto_rollback: str  # off | pr | direct

    @property
    def selector(self) -> str:
        """The PromQL label matchers that pick this scope's series."""
        # json.dumps quotes the same way PromQL does (double quotes, backslash escapes).
        return f"namespace={json.dumps(self.namespace)}, model={json.dumps(self.model)}"


def _by(*extra: str) -> str:
    return f"by ({', '.join((*GROUP, *extra))})"


def _on(*extra: str) -> str:
    return f"on ({', '.join((*GROUP, *extra))})"


def record_name(signal: str, s: RuleSettings) -> str:
    """Recorded series follow Prometheus' level:metric:operations naming, with the window."""
    return f"mlops:{signal}:{s.window}"


@dataclass(frozen=True)
class Names:
    """The recorded series, by what they hold."""

    instances: str
    feature_mean: str
    feature_variance: str
    feature_effect: str
    drifted_fraction: str
    class_share: str
    prediction_psi: str
    anomaly_rate: str
    anomaly_limit: str
    latency_p99: str
    requests: str
    error_ratio: str
    availability: str


def names(s: RuleSettings) -> Names:
    """The recorded series names for these settings."""
    return Names(
        instances=record_name("input_instances:increase", s),
        feature_mean=record_name("input_feature_mean", s),
        feature_variance=record_name("input_feature_variance", s),
        feature_effect=record_name("input_feature_effect_size", s),
        drifted_fraction=record_name("input_drifted_fraction", s),
        class_share=record_name("prediction_class_share", s),
        prediction_psi=record_name("prediction_psi", s),
        anomaly_rate=record_name("input_anomaly_rate", s),
        anomaly_limit=record_name("input_anomaly_rate_limit", s),
        latency_p99=record_name("predict_latency_seconds:p99", s),
        requests=record_name("predict_requests:increase", s),
        error_ratio=record_name("predict_errors:ratio", s),
        availability=record_name("availability", s),
    )


def _gauge(metric: Metric, scope: Scope, *extra: str, match: str = "") -> str:
    """A reference gauge, one value per group: every pod of a release exports the same."""
    sel = scope.selector + (f", {match}" if match else "")
    return f"max {_by(*extra)} ({metric}{{{sel}}})"


def _rate(metric: str, scope: Scope, s: RuleSettings, *extra: str, match: str = "") -> str:
    sel = scope.selector + (f", {match}" if match else "")
    return f"sum {_by(*extra)} (rate({metric}{{{sel}}}[{s.window}]))"


def _input_rules(scope: Scope, s: RuleSettings, n: Names) -> list[tuple[str, str]]:
    instances = _rate(Metric.INSTANCES, scope, s)
    threshold = _gauge(Metric.REFERENCE_DRIFT_THRESHOLD, scope, match='statistic="feature_effect"')
    return [
        (
            n.instances,
            f"sum {_by()} (increase({Metric.INSTANCES}{{{scope.selector}}}[{s.window}]))",
        ),
        # Windowed mean and variance from running sums: E[x] and E[x^2] - E[x]^2 over the
        # window's instances, pooled across pods.
        (
            n.feature_mean,
            f"{_rate(Metric.FEATURE_SUM, scope, s, 'feature')}\n"
            f"  / {_on()} group_left() ({instances})",
        ),
        (
            n.feature_variance,
            f"clamp_min(\n  {_rate(Metric.FEATURE_SQUARES, scope, s, 'feature')}\n"
            f"  / {_on()} group_left() ({instances})\n"
            f"  - {_on('feature')} {n.feature_mean} ^ 2,\n  0\n)",
        ),
        # Effect size: how many reference standard deviations the window's mean has moved.
        (
            n.feature_effect,
            f"abs({n.feature_mean} - {_on('feature')} "
            f"{_gauge(Metric.REFERENCE_FEATURE_MEAN, scope, 'feature')})\n"
            f"  / {_on('feature')} {_gauge(Metric.REFERENCE_FEATURE_STDDEV, scope, 'feature')}",
        ),
        # Share of features whose effect exceeds the calibrated per-feature threshold.
        (
            n.drifted_fraction,
            f"avg {_by()} (\n  {n.feature_effect} > bool {_on()} group_left() ({threshold})\n)",
        ),
        (
            n.anomaly_rate,
            f"{_rate(Metric.ANOMALIES, scope, s)}\n  / {_on()} ({instances})",
        ),
        # The largest anomaly share reference-like traffic gives in a window of n instances:
        # a one-sided binomial bound around the reference rate p.
        (
            n.anomaly_limit,
            f"{_gauge(Metric.REFERENCE_ANOMALY_RATE, scope)}\n  + {s.anomaly_z} * sqrt(\n"
            f"    {_gauge(Metric.REFERENCE_ANOMALY_RATE, scope)}\n"
            f"    * (1 - {_gauge(Metric.REFERENCE_ANOMALY_RATE, scope)})\n"
            f"    / {_on()} {n.instances}\n  )",
        ),
    ]


def _prediction_rules(scope: Scope, s: RuleSettings, n: Names) -> list[tuple[str, str]]:
    reference = _gauge(Metric.REFERENCE_CLASS_RATIO, scope, "class")
    predictions = _rate(Metric.PREDICTIONS, scope, s, "class")
    # Classes the window never predicted count as a share of 0 (a missing series would drop
    # their term from the sum).
    share = f"({predictions}\n  / {_on()} group_left() ({_rate(Metric.PREDICTIONS, scope, s)}))"
    floor = PSI_FLOOR
    return [
        (n.class_share, f"{share}\n  or {_on('class')} ({reference} * 0)"),
        # Population stability index: sum over classes of (p - q) ln(p / q).
        (
            n.prediction_psi,
            f"sum {_by()} (\n  (clamp_min({n.class_share}, {floor}) - {_on('class')} "
            f"clamp_min({reference}, {floor}))\n"
            f"  * {_on('class')} ln(clamp_min({n.class_share}, {floor}) / {_on('class')} "
            f"clamp_min({reference}, {floor}))\n)",
        ),
    ]


def _service_rules(scope: Scope, s: RuleSettings, n: Names) -> list[tuple[str, str]]:
    predict = 'route="predict"'
    requests = _rate(Metric.REQUESTS, scope, s, match=predict)
    errors = _rate(Metric.REQUESTS, scope, s, match=f'{predict}, code=~"5.."')
    return [
        (
            n.latency_p99,
            "histogram_quantile(0.99, "
            f"{_rate(f'{Metric.LATENCY}_bucket', scope, s, 'le', match=predict)})",
        ),
        (
            n.requests,
            f"sum {_by()} (increase({Metric.REQUESTS}{{{scope.selector}, {predict}}}[{s.window}]))",
        ),
        # No 5xx series yet means no errors, not no ratio.
        (n.error_ratio, f"({errors}\n  or {requests} * 0)\n  / {_on()} ({requests})"),
        # The share of scrapes that found a target up over the window.
        (
            n.availability,
            f"avg {_by()} (avg_over_time(up{{{scope.selector}}}[{s.window}]))",
        ),
    ]


def recording_rules(scope: Scope, s: RuleSettings) -> list[dict[str, Any]]:
    """The recording rules for input, prediction and service signals, labelled by environment."""
    n = names(s)
    rules = _input_rules(scope, s, n) + _prediction_rules(scope, s, n)
    rules += _service_rules(scope, s, n)
    return [
        {"record": name, "expr": expr, "labels": {"environment": scope.environment}}
        for name, expr in rules
    ]


@dataclass(frozen=True)
class Alert:
    """One alerting rule before it is rendered for Prometheus."""

    name: str
    expr: str
    for_: str
    keep_firing_for: str
    severity: Severity
    summary: str
    description: str


def _enough_instances(scope: Scope, n: Names) -> str:
    """The drift thresholds were calibrated on windows of this many instances; a smaller window
    is noisier than they allow for."""
    return (
        f"and {_on()} ({n.instances} >= {_on()} {_gauge(Metric.REFERENCE_WINDOW_INSTANCES, scope)})"
    )


def _drift_alerts(scope: Scope, s: RuleSettings, n: Names) -> list[Alert]:
    def threshold(stat: str) -> str:
        return _gauge(
            Metric.REFERENCE_DRIFT_THRESHOLD, scope, match=f"statistic={json.dumps(stat)}"
        )

    return [
        Alert(
            "ModelInputDrift",
            f"{n.drifted_fraction} > {_on()} group_left() ({threshold('drifted_fraction')})\n"
            + _enough_instances(scope, n),
            s.drift_for,
            s.drift_keep_firing_for,
            "warning",
            "Inputs of {{ $labels.model }} {{ $labels.release }} drifted from its reference",
            "{{ $value | humanizePercentage }} of the features moved past their calibrated "
            "effect size over the last " + s.window + ".",
        ),
        Alert(
            "ModelPredictionDrift",
            f"{n.prediction_psi} > {_on()} group_left() ({threshold('prediction_psi')})\n"
            + _enough_instances(scope, n),
            s.drift_for,
            s.drift_keep_firing_for,
            "warning",
            "Predictions of {{ $labels.model }} {{ $labels.release }} drifted from its reference",
            "The class distribution's PSI against the reference is {{ $value }} over the last "
            + s.window
            + ".",
        ),
    ]


def _service_alerts(s: RuleSettings, n: Names) -> list[Alert]:
    slo = s.latency_p99_ms / 1000
    return [
        Alert(
            "ModelInputAnomalies",
            f"{n.anomaly_rate} > {_on()} {n.anomaly_limit}",
            s.anomaly_for,
            s.keep_firing_for,
            "warning",
            "{{ $labels.model }} {{ $labels.release }} receives anomalous inputs",
            "{{ $value | humanizePercentage }} of the instances scored above the anomaly "
            "threshold over the last " + s.window + ".",
        ),
        Alert(
            "ModelLatencyHigh",
            f"{n.latency_p99} > {slo:g}",
            s.latency_for,
            s.keep_firing_for,
            "warning",
            "{{ $labels.model }} {{ $labels.release }} answers slower than its SLO",
            "p99 predict latency is {{ $value | humanizeDuration }} over the last "
            f"{s.window} (SLO {s.latency_p99_ms:g} ms).",
        ),
        Alert(
            "ModelErrorRate",
            f"{n.error_ratio} > {s.max_error_ratio:g}\n"
            f"and {_on()} ({n.requests} >= {s.min_requests})",
            s.errors_for,
            s.keep_firing_for,
            "critical",
            "{{ $labels.model }} {{ $labels.release }} answers predict with errors",
            "{{ $value | humanizePercentage }} of predict requests got a 5xx over the last "
            f"{s.window} (limit {s.max_error_ratio:.0%}).",
        ),
    ]


def _down_alert(scope: Scope, s: RuleSettings) -> Alert:
    # `up` carries model, release and color from the pods' labels (see pod_monitor), so a
    # release whose every pod fails to answer still has a series to alert on.
    return Alert(
        "ModelDown",
        f"max {_by()} (up{{{scope.selector}}}) == 0\n"
        f"or max {_by()} ({Metric.READY}{{{scope.selector}}}) == 0",
        s.down_for,
        s.keep_firing_for,
        "critical",
        "No pod of {{ $labels.model }} {{ $labels.release }} ({{ $labels.color }}) is serving",
        "Every target of this release is down or reports its model not ready.",
    )


def alerts(scope: Scope, s: RuleSettings) -> list[Alert]:
    """The drift, service and down alerts for a scope."""
    n = names(s)
    return [*_drift_alerts(scope, s, n), *_service_alerts(s, n), _down_alert(scope, s)]


def alert_rule(alert: Alert, scope: Scope, s: RuleSettings) -> dict[str, Any]:
    """An alert as a Prometheus rule; alerts that may roll back are labelled when enabled."""
    labels = {"environment": scope.environment, "severity": alert.severity}
    if scope.auto_rollback != "off" and alert.name in ROLLBACK_ALERTS:
        labels["action"] = "rollback"
    return {
        "alert": alert.name,
        "expr": alert.expr,
        "for": alert.for_,
        "keep_firing_for": alert.keep_firing_for,
        "labels": labels,
        "annotations": {
            "summary": alert.summary,
            "description": alert.description,
            "runbook_url": f"{s.runbook}#{alert.name.lower()}",
            # The guard writes it into the rollback commit's Alert-Value trailer.
            "value": "{{ $value }}",
        },
    }


def rule_groups(scope: Scope, s: RuleSettings) -> list[dict[str, Any]]:
    """The groups as Prometheus reads them (a rule file's ``groups``)."""
    return [
        {
            "name": f"mlops-{scope.model}-signals",
            "interval": s.evaluation_interval,
            "rules": recording_rules(scope, s),
        },
        {
            "name": f"mlops-{scope.model}-alerts",
            "interval": s.evaluation_interval,
            "rules": [alert_rule(a, scope, s) for a in alerts(scope, s)],
        },
    ]


def _metadata(name: str, scope: Scope, **labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": scope.namespace,
        "labels": {
            "app": scope.model,
            "app.kubernetes.io/managed-by": "mlops-gitops",
            **labels,
        },
    }


def prometheus_rule(scope: Scope, s: RuleSettings) -> dict[str, Any]:
    """The PrometheusRule object the Prometheus Operator loads for a scope."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(scope.model, scope),
        "spec": {"groups": rule_groups(scope, s)},
    }


def pod_monitor(scope: Scope, port_name: str = "http") -> dict[str, Any]:
    """Scrape every pod of the model, both colors. The pods' app/color/release labels become
    the targets' model/color/release, so ``up`` can say which release is down; honorLabels
    keeps the server's own (identical) labels on its series instead of renaming them."""
    relabel = [
        {"sourceLabels": [f"__meta_kubernetes_pod_label_{src}"], "targetLabel": dst}
        for src, dst in (("app", "model"), ("color", "color"), ("release", "release"))
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _metadata(scope.model, scope),
        "spec": {
            "selector": {"matchLabels": {"app": scope.model}},
            "namespaceSelector": {"matchNames": [scope.namespace]},
            "podMetricsEndpoints": [
                {
                    "port": port_name,
                    "path": contract.METRICS_PATH,
                    "honorLabels": True,
                    "relabelings": relabel,
                }
            ],
        },
    }


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _: text


def standalone(scope: Scope, s: RuleSettings) -> dict[str, str]:
    """Every recording rule's expression with the recorded series it reads replaced by their
    own expressions, by record name: what ``mlops monitor`` asks Prometheus directly, with
    ``s.window`` as its window, so its numbers mean what the alerts' do without depending on
    the rules being loaded (or on their window). The rules come in dependency order, so one
    pass inlines everything."""
    out: dict[str, str] = {}
    for rule in recording_rules(scope, s):
        expr = rule["expr"]
        for name, inner in out.items():
            # A recorded name never continues with a name character: mlops:a:10m is not a
            # prefix of mlops:a_limit:10m.
            pattern = rf"(?<![\w:]){re.escape(name)}(?![\w:])"
            # A function, not a template: the expression's backslashes must stay as they are.
            expr = re.sub(pattern, _literal(f"({inner})"), expr)
        out[rule["record"]] = expr
    return out


@dataclass(frozen=True)
class Queries:
    """The instant queries of a monitoring report, each grouped by (namespace, model, release,
    color) and, where noted, by feature or class."""

    instances: str
    window_instances: str  # the window size the drift thresholds were calibrated for
    feature_effect: str  # feature
    feature_threshold: str
    drifted_fraction: str
    drifted_fraction_threshold: str
    class_share: str  # class
    reference_class_share: str  # class
    prediction_psi: str
    prediction_psi_threshold: str
    anomaly_rate: str
    anomaly_limit: str
    latency_p99: str  # seconds
    requests: str
    error_ratio: str
    availability: str


def queries(scope: Scope, s: RuleSettings) -> Queries:
    """The report's queries for a scope: the recording rules' expressions (``standalone``) and
    the reference gauges the alerts compare them with."""
    n, e = names(s), standalone(scope, s)

    def threshold(stat: str) -> str:
        return _gauge(
            Metric.REFERENCE_DRIFT_THRESHOLD, scope, match=f"statistic={json.dumps(stat)}"
        )

    return Queries(
        instances=e[n.instances],
        window_instances=_gauge(Metric.REFERENCE_WINDOW_INSTANCES, scope),
        feature_effect=e[n.feature_effect],
        feature_threshold=threshold("feature_effect"),
        drifted_fraction=e[n.drifted_fraction],
        drifted_fraction_threshold=threshold("drifted_fraction"),
        class_share=e[n.class_share],
        reference_class_share=_gauge(Metric.REFERENCE_CLASS_RATIO, scope, "class"),
        prediction_psi=e[n.prediction_psi],
        prediction_psi_threshold=threshold("prediction_psi"),
        anomaly_rate=e[n.anomaly_rate],
        anomaly_limit=e[n.anomaly_limit],
        latency_p99=e[n.latency_p99],
        requests=e[n.requests],
        error_ratio=e[n.error_ratio],
        availability=e[n.availability],
    )

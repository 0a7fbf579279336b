"""The Grafana dashboard of one model in one environment, built with grafana-foundation-sdk's
typed builders (no hand-written JSON) and shipped as a ConfigMap that kube-prometheus-stack's
Grafana sidecar loads (label ``grafana_dashboard: "1"``).

It plots the recorded series of monitoring.py, so its queries stay cheap and use the same
names as the alerts. Pure: builds dicts.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import VariableOption, VariableRefresh

from pipelines.core.monitoring import Names, RuleSettings, Scope, names

SIDECAR_LABEL = "grafana_dashboard"
# The filter every panel applies: the three variables.
FILTER = 'environment="$environment", model="$model", release=~"$release"'
LEGEND = "{{release}} {{color}}"


def _variables(n: Names, scope: Scope) -> list[gd.QueryVariable]:
    # Every recorded series carries environment, model, release and color.
    source = n.instances

    def variable(name: str, query: str) -> gd.QueryVariable:
        return (
            gd.QueryVariable(name)
            .label(name)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )

    return [
        variable("environment", f"label_values({source}, environment)").current(
            _option(scope.environment)
        ),
        variable("model", f'label_values({source}{{environment="$environment"}}, model)').current(
            _option(scope.model)
        ),
        variable(
            "release",
            f'label_values({source}{{environment="$environment", model="$model"}}, release)',
        )
        .multi(True)
        .include_all(True),
    ]


def _option(value: str) -> VariableOption:
    return VariableOption(text=value, value=value, selected=True)


def _panel(title: str, unit: str, *queries: tuple[str, str]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).height(8).span(12)
    # Grafana tells a panel's queries apart by refId: A, B, ...
    for i, (expr, legend) in enumerate(queries):
        query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        panel = panel.with_target(query)
    return panel


def _panels(n: Names, s: RuleSettings) -> list[timeseries.Panel]:
    def q(series: str) -> str:
        return f"{series}{{{FILTER}}}"

    slo = s.latency_p99_ms / 1000
    return [
        _panel("Features drifted (share)", "percentunit", (q(n.drifted_fraction), LEGEND)),
        _panel(
            "Largest feature effect sizes",
            "none",
            (f"topk(10, {q(n.feature_effect)})", "{{feature}} " + LEGEND),
        ),
        _panel("Prediction PSI vs reference", "none", (q(n.prediction_psi), LEGEND)),
        _panel(
            "Predicted class shares",
            "percentunit",
            (q(n.class_share), "{{class}} " + LEGEND),
        ),
        _panel(
            "Anomaly rate and its limit",
            "percentunit",
            (q(n.anomaly_rate), LEGEND),
            (q(n.anomaly_limit), "limit " + LEGEND),
        ),
        _panel("p99 predict latency", "s", (q(n.latency_p99), LEGEND), (f"vector({slo:g})", "SLO")),
        _panel("Predict error ratio", "percentunit", (q(n.error_ratio), LEGEND)),
        _panel("Availability (targets up)", "percentunit", (q(n.availability), LEGEND)),
    ]


def build(scope: Scope, s: RuleSettings) -> dict[str, Any]:
    """The dashboard model, as Grafana's JSON."""
    n = names(s)
    board = (
        gd.Dashboard(f"mlops {scope.model} ({scope.environment})")
        .uid(f"mlops-{scope.environment}-{scope.model}"[:40])
        .tags(["mlops", scope.model, scope.environment])
        .time("now-6h", "now")
        .refresh("1m")
    )
    for variable in _variables(n, scope):
        board = board.with_variable(variable)
    for panel in _panels(n, s):
        board = board.with_panel(panel)
    encoded: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def config_map(scope: Scope, s: RuleSettings) -> dict[str, Any]:
    """The dashboard as a ConfigMap, the form in which Grafana's sidecar picks it up."""
    text = json.dumps(build(scope, s), indent=2, sort_keys=True, ensure_ascii=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{scope.model}-dashboard",
            "namespace": scope.namespace,
            "labels": {
                "app": scope.model,
                "app.kubernetes.io/managed-by": "mlops-gitops",
                SIDECAR_LABEL: "1",
            },
        },
        "data": {f"mlops-{scope.environment}-{scope.model}.json": text + "\n"},
    }

"""The monitoring objects built in code: series names from the serving contract, labels and
annotations every alert carries, action=rollback only where the environment allows it, windows
and the SLO from settings, the dashboard's variables, and the policy and CRD checks on them.
(promtool runs the rules themselves: tests/integration/test_alert_rules.py.)"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from pipelines.core import dashboard, monitoring, policy
from pipelines.core.monitoring import RuleSettings, Scope
from pipelines.serving.contract import METRICS_PATH, Metric
from tests.unit.core.test_policy import staging

SETTINGS = monitoring.settings_for()


def scope(auto_rollback: str = "direct") -> Scope:
    return Scope("staging", "mlops-staging", "digits", auto_rollback)


def exprs(groups: list[dict[str, Any]]) -> list[str]:
    return [r["expr"] for g in groups for r in g["rules"]]


def alert_rules(auto_rollback: str = "direct") -> dict[str, dict[str, Any]]:
    groups = monitoring.rule_groups(scope(auto_rollback), SETTINGS)
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_every_series_the_rules_read_is_one_the_server_exports() -> None:
    known = {str(m) for m in Metric} | {f"{Metric.LATENCY}_bucket", "up"}
    recorded = {
        r["record"]
        for g in monitoring.rule_groups(scope(), SETTINGS)
        for r in g["rules"]
        if "record" in r
    }
    for expr in exprs(monitoring.rule_groups(scope(), SETTINGS)):
        for name in re.findall(r"\b(mlops_[a-z_]+|up)\{", expr):
            assert name in known, name
        for name in re.findall(r"\bmlops:[a-z_:0-9]+", expr):
            assert name in recorded, name


def test_the_six_alerts_and_what_each_carries() -> None:
    alerts = alert_rules()
    assert sorted(alerts) == sorted(
        [
            "ModelInputDrift",
            "ModelPredictionDrift",
            "ModelInputAnomalies",
            "ModelLatencyHigh",
            "ModelErrorRate",
            "ModelDown",
        ]
    )
    for name, rule in alerts.items():
        assert rule["for"], name
        assert rule["keep_firing_for"], name
        assert rule["labels"]["environment"] == "staging"
        assert rule["labels"]["severity"] in monitoring.SEVERITIES
        assert rule["annotations"]["runbook_url"] == f"README.md#{name.lower()}"
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        # model, release and color come from the series: every expression reads recorded
        # series (grouped by them) or groups by them itself. promtool checks the result.
        assert "mlops:" in rule["expr"] or "by (namespace, model, release, color)" in rule["expr"]


@pytest.mark.parametrize("auto_rollback", ["pr", "direct"])
def test_action_rollback_only_on_the_alerts_that_justify_it(auto_rollback: str) -> None:
    marked = {n for n, r in alert_rules(auto_rollback).items() if "action" in r["labels"]}
    assert marked == set(monitoring.ROLLBACK_ALERTS)
    assert all(alert_rules(auto_rollback)[n]["labels"]["action"] == "rollback" for n in marked)


def test_no_action_where_auto_rollback_is_off() -> None:
    assert not any("action" in r["labels"] for r in alert_rules("off").values())


def test_drift_alerts_need_the_calibrated_window_size() -> None:
    for name in ("ModelInputDrift", "ModelPredictionDrift"):
        assert str(Metric.REFERENCE_WINDOW_INSTANCES) in alert_rules()[name]["expr"]


def test_windows_and_the_slo_come_from_the_settings() -> None:
    short = RuleSettings(window="1m", drift_for="2m", latency_p99_ms=120)
    groups = monitoring.rule_groups(scope(), short)
    assert all("[10m]" not in e for e in exprs(groups))
    assert any("[1m]" in e for e in exprs(groups))
    alerts = {r["alert"]: r for r in groups[1]["rules"]}
    assert alerts["ModelInputDrift"]["for"] == "2m"
    assert alerts["ModelLatencyHigh"]["expr"].endswith("> 0.12")
    assert monitoring.settings_for(None) == RuleSettings()


def test_the_pod_monitor_scrapes_both_colors_on_the_metrics_path() -> None:
    pm = monitoring.pod_monitor(scope())
    assert pm["spec"]["selector"] == {"matchLabels": {"app": "digits"}}  # no color
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == METRICS_PATH
    assert endpoint["port"] == "http"
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert targets == {"model", "release", "color"}


def test_the_dashboard_is_a_sidecar_config_map_with_the_three_variables() -> None:
    cm = dashboard.config_map(scope(), SETTINGS)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = cm["data"].values()
    board = json.loads(text)
    assert board["uid"] == "mlops-staging-digits"
    variables = [v["name"] for v in board["templating"]["list"]]
    assert variables == ["environment", "model", "release"]
    recorded = {
        r["record"]
        for g in monitoring.rule_groups(scope(), SETTINGS)
        for r in g["rules"]
        if "record" in r
    }
    for panel in board["panels"]:
        assert [t["refId"] for t in panel["targets"]] == ["A", "B"][: len(panel["targets"])]
        for target in panel["targets"]:
            used = re.findall(r"mlops:[a-z_:0-9]+", target["expr"])
            assert all(u in recorded for u in used), target["expr"]
            assert "vector(" in target["expr"] or "$release" in target["expr"]


def _rule_file(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return files["rendered/staging/prometheusrule-digits.yaml"]


def test_policy_refuses_an_alert_without_its_runbook_severity_or_windows() -> None:
    files = staging()
    alert = _rule_file(files)["spec"]["groups"][1]["rules"][0]
    del alert["annotations"]["runbook_url"]
    del alert["keep_firing_for"]
    alert["labels"]["severity"] = "page-everyone"
    alert["labels"]["action"] = "delete-namespace"
    messages = [v.message for v in policy.check(files) if v.rule == "alerts"]
    name = alert["alert"]
    assert messages == [
        f"alert {name}: no 'keep_firing_for'",
        f"alert {name}: no 'runbook_url' annotation",
        f"alert {name}: severity 'page-everyone' is not one of critical, warning, info",
        f"alert {name}: action 'delete-namespace': the only action is 'rollback'",
    ]


def test_policy_refuses_an_alert_without_environment() -> None:
    files = staging()
    del _rule_file(files)["spec"]["groups"][1]["rules"][-1]["labels"]["environment"]
    assert {v.rule for v in policy.check(files)} == {"alerts"}


def test_policy_refuses_a_pod_monitor_that_selects_no_pods() -> None:
    files = staging()
    pm = files["rendered/staging/podmonitor-digits.yaml"]
    pm["spec"]["selector"]["matchLabels"] = {"app": "digit"}
    assert {v.rule for v in policy.check(files)} == {"monitor-selects"}


def test_crd_schemas_refuse_unknown_fields_in_monitoring_objects() -> None:
    from pathlib import Path

    from pipelines.adapters import manifests

    crds = Path(__file__).resolve().parents[3] / "manifests" / "crds"
    files = staging()
    good = {p: o for p, o in files.items() if o["kind"] in ("PrometheusRule", "PodMonitor")}
    assert manifests.schema_violations(crds, good, "1.33") == []
    bad = copy.deepcopy(good)
    bad["rendered/staging/prometheusrule-digits.yaml"]["spec"]["groups"][1]["rules"][0][
        "keep_firing"
    ] = "5m"
    bad["rendered/staging/podmonitor-digits.yaml"]["spec"]["podMetricsEndpoints"][0]["paht"] = "/"
    messages = [v.message for v in manifests.schema_violations(crds, bad, "1.33")]
    assert len(messages) == 2
    assert all("Additional properties are not allowed" in m for m in messages), messages


def test_the_readme_has_every_alerts_runbook_and_row() -> None:
    """runbook_url points at README.md#<alert>: each alert has its heading there, and its row
    in the alert table states the rendered windows, severity and rollback."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for name, rule in alert_rules().items():
        assert f"\n#### {name}\n" in readme, name
        (row,) = [r for r in readme.splitlines() if r.startswith(f"| [{name}](#{name.lower()})")]
        cells = [c.strip() for c in row.split("|")[1:-1]]
        windows = f"{rule['for']} / {rule['keep_firing_for']}".replace("m", " m")
        rollback = "yes" if "action" in rule["labels"] else "no"
        assert cells[2:] == [windows, rule["labels"]["severity"], rollback], name

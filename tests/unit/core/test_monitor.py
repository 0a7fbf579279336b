"""`mlops monitor`'s pure parts: the window and URL it accepts, the verdicts (the alerts'
conditions over one window), the Markdown, and the queries built from the recording rules.
(Against a real Prometheus: tests/integration/test_monitor.py.)"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from pipelines.core import monitor, monitoring
from pipelines.core.monitor import Signals

RULES = monitoring.settings_for(25)
SCOPE = monitoring.Scope("production", "mlops-production", "digits", "off")


def calm(**changes: object) -> Signals:
    """A release whose window looks like its reference: no condition holds."""
    base = Signals(
        model="digits",
        release="digits-000000000002",
        color="blue",
        instances=1000,
        window_instances=200,
        effects={"pixel_1": 0.05, "pixel_2": 0.1, "pixel_10": 0.02},
        effect_threshold=0.25,
        drifted_fraction=0.0,
        drifted_fraction_threshold=0.05,
        class_shares={"0": 0.5, "1": 0.5},
        reference_shares={"0": 0.5, "1": 0.5},
        psi=0.001,
        psi_threshold=0.05,
        anomaly_rate=0.01,
        anomaly_limit=0.02,
        latency_p99_s=0.005,
        requests=500,
        error_ratio=0.0,
        availability=1.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("10s", 10), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("90d", 7776000)],
)
def test_windows_are_prometheus_durations(text: str, seconds: int) -> None:
    assert monitor.parse_window(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "1 h", "1H", "h", "30m1h", "-1h", "1.5h", "9s", "91d", "1h;drop", "100ms"]
)
def test_other_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|window must be"):
        monitor.parse_window(text)


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("http://127.0.0.1:9090", "http://127.0.0.1:9090"),
        ("https://prom.example/", "https://prom.example"),
        ("http://prom.example:80/prometheus/", "http://prom.example:80/prometheus"),
        ("http://[::1]:9090", "http://[::1]:9090"),
    ],
)
def test_prometheus_urls_are_normalised(text: str, url: str) -> None:
    assert monitor.prometheus_url(text) == url


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("ftp://prom.example", "http(s)"),
        ("file:///etc/passwd", "http(s)"),
        ("prom.example:9090", "http(s)"),
        ("http://", "http(s)"),
        ("http://user:pw@prom.example", "credentials"),
        ("http://prom.example/?x=1", "query"),
        ("http://prom.example/#x", "query"),
        ("http://prom.example/a b", "blank"),
        ("http://prom.example:99999", "not a URL"),
    ],
)
def test_other_urls_are_refused(text: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        monitor.prometheus_url(text)


def test_a_calm_release_meets_no_condition() -> None:
    assert monitor.conditions(calm(), RULES) == dict.fromkeys(monitor.CONDITIONS, False)
    assert monitor.drifted_features(calm()) == []


def test_drifted_features_are_those_over_the_threshold_largest_first() -> None:
    s = calm(effects={"pixel_1": 0.3, "pixel_2": 0.9, "pixel_3": 0.25, "pixel_4": math.nan})
    assert monitor.drifted_features(s) == ["pixel_2", "pixel_1"]  # 0.25 is not over 0.25


def test_input_or_prediction_drift_is_drift_once_the_window_is_large_enough() -> None:
    assert monitor.conditions(calm(drifted_fraction=0.2), RULES)["drift"]
    assert monitor.conditions(calm(psi=0.2), RULES)["drift"]
    # The thresholds hold for windows of 200 instances; 150 are too few to judge.
    assert not monitor.conditions(calm(psi=0.2, instances=150), RULES)["drift"]
    assert not monitor.conditions(calm(psi=0.2, window_instances=None), RULES)["drift"]


def test_each_service_condition_is_its_alerts() -> None:
    assert monitor.conditions(calm(anomaly_rate=0.03), RULES)["anomalies"]
    assert monitor.conditions(calm(latency_p99_s=0.026), RULES)["latency"]
    assert not monitor.conditions(calm(latency_p99_s=0.025), RULES)["latency"]
    assert monitor.conditions(calm(error_ratio=0.06), RULES)["errors"]
    # Below min_requests a ratio is noise, as in ModelErrorRate.
    assert not monitor.conditions(calm(error_ratio=0.5, requests=19), RULES)["errors"]


def test_no_data_meets_no_condition() -> None:
    empty = Signals(model="digits", release="r", color="blue")
    assert monitor.conditions(empty, RULES) == dict.fromkeys(monitor.CONDITIONS, False)
    nan = calm(anomaly_rate=math.nan, error_ratio=math.nan, latency_p99_s=math.nan)
    assert not any(monitor.conditions(nan, RULES).values())


def test_only_asked_conditions_fail() -> None:
    found = [
        monitor.conditions(calm(), RULES),
        monitor.conditions(calm(psi=1.0, latency_p99_s=1.0), RULES),
    ]
    assert monitor.failing(found, ["drift"]) == ["drift"]
    assert monitor.failing(found, ["latency", "drift", "errors"]) == ["drift", "latency"]
    assert monitor.failing(found, []) == []
    assert monitor.failing([], ["drift"]) == []


def test_only_the_models_an_asked_condition_holds_for_are_failing() -> None:
    found = {
        "digits": monitor.conditions(calm(psi=1.0), RULES),
        "diabetes": monitor.conditions(calm(model="diabetes", latency_p99_s=1.0), RULES),
        "churn": monitor.conditions(calm(model="churn", psi=1.0, anomaly_rate=0.5), RULES),
        "calm": monitor.conditions(calm(model="calm"), RULES),
    }
    assert monitor.failing_models(found, ["drift"]) == ["churn", "digits"]  # sorted
    assert monitor.failing_models(found, ["latency"]) == ["diabetes"]
    assert monitor.failing_models(found, ["drift", "latency"]) == ["churn", "diabetes", "digits"]
    assert monitor.failing_models(found, ["errors"]) == []
    assert monitor.failing_models(found, []) == []
    assert monitor.failing_models({}, ["drift"]) == []


@pytest.mark.parametrize(
    ("failed", "models", "lines"),
    [
        ([], [], "MONITOR_FAILING=false\nMONITOR_MODELS=[]\n"),
        (["drift"], ["digits"], 'MONITOR_FAILING=true\nMONITOR_MODELS=["digits"]\n'),
        (
            ["drift", "latency"],
            ["diabetes", "digits"],
            'MONITOR_FAILING=true\nMONITOR_MODELS=["diabetes","digits"]\n',
        ),
    ],
)
def test_the_ci_verdict_is_two_lines_with_a_compact_json_array(
    failed: list[str], models: list[str], lines: str
) -> None:
    assert monitor.ci_verdict(failed, models) == lines


def test_the_section_shows_verdicts_drifted_features_shares_and_plots() -> None:
    s = calm(effects={"pixel_1": 0.3, "pixel_2": 0.01}, drifted_fraction=0.5)
    md = monitor.release_section(s, RULES, ["digits-dashboard.png"])
    assert md.startswith("## digits: digits-000000000002 (blue)")
    assert "| input drift: share of drifted features | 50.00% " in md
    assert "**ALERT**" in md
    assert "Drifted features (1 of 2, effect size over 0.25): `pixel_1`" in md
    assert "| 0     | 50.00%     | 50.00%          |" in md
    assert "![digits-dashboard.png](digits-dashboard.png)" in md
    assert "not judged" not in md
    few = monitor.release_section(calm(instances=20), RULES)
    assert "Only 20 instances in the window; the drift thresholds were calibrated on 200" in few
    assert "no data" in monitor.release_section(Signals("digits", "r", "blue"), RULES)


def test_the_report_says_what_failed_and_what_was_asked() -> None:
    args = {"environment": "production", "window": "1h", "at": "T", "url": "http://p"}
    failed = monitor.report(**args, sections=["S"], failed=["drift"], fail_on=["drift", "errors"])
    assert "**Failing: drift** (asked to fail on drift, errors)." in failed
    assert failed.endswith("S\n")
    ok = monitor.report(**args, sections=[], failed=[], fail_on=[])
    assert "Report only (no --fail-on)." in ok
    assert "No model has an active release in this environment." in ok


def test_queries_are_the_recording_rules_with_recorded_series_inlined() -> None:
    rules = dataclasses.replace(RULES, window="40s")
    recorded = {r["record"]: r["expr"] for r in monitoring.recording_rules(SCOPE, rules)}
    standalone = monitoring.standalone(SCOPE, rules)
    assert standalone.keys() == recorded.keys()
    n = monitoring.names(rules)
    # A rule that reads only raw series is asked as it is recorded.
    assert standalone[n.instances] == recorded[n.instances]
    for name, expr in standalone.items():
        assert "mlops:" not in expr, name  # nothing depends on the rules being loaded
        assert "[40s]" in expr, name  # the report's window, not the rules'
        assert expr.count("(") == expr.count(")"), name
    # The effect size holds the feature mean's own expression where the rule names it.
    assert f"({recorded[n.feature_mean]})" in standalone[n.feature_effect]
    q = monitoring.queries(SCOPE, rules)
    assert q.feature_effect == standalone[n.feature_effect]
    assert 'statistic="prediction_psi"' in q.prediction_psi_threshold
    assert 'namespace="mlops-production", model="digits"' in q.window_instances


def test_a_regressor_s_prediction_shares_are_named_as_bins_of_its_value() -> None:
    s = Signals(
        "diabetes",
        "r",
        "blue",
        class_shares={"0": 0.2, "1": 0.8},
        reference_shares={"0": 0.5, "1": 0.5},
        predicted="bin of the predicted value",
    )
    text = monitor.release_section(s, RULES)
    assert "| bin of the predicted value | live share | reference share |" in text
    assert "| class " not in text

"""The guard's decisions (core/guard.py): pure, no mocks."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.config import EnvironmentState, ModelSlot, NodePool
from pipelines.core import guard
from tests.unit.core.test_bluegreen import record

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
LIMIT = guard.RateLimit(2, dt.timedelta(hours=1))


def state(auto: str = "direct") -> EnvironmentState:
    return EnvironmentState(
        node_pool=NodePool(cpu="4", memory="16Gi", nodes=3),
        environment="staging",
        namespace="mlops-staging",
        auto_rollback=auto,
        models={"digits": ModelSlot(active="green", blue=record(1), green=record(2))},
    )


def alert(**labels: str) -> guard.Alert:
    base = {
        "alertname": "ModelInputDrift",
        "action": "rollback",
        "environment": "staging",
        "model": "digits",
        "release": record(2).release_id,
        "severity": "critical",
    }
    return guard.Alert(
        status=labels.pop("status", "firing"),
        labels={k: v for k, v in {**base, **labels}.items() if v},
        annotations={"summary": "inputs drifted", "value": "0.42"},
        starts_at="2026-12-06T11:50:00Z",
        generator_url="http://prometheus:9090/graph?g0.expr=x",
        fingerprint="abc123",
    )


def test_a_firing_rollback_alert_on_the_serving_release_is_acted_on() -> None:
    d = guard.decide(alert(), state(), [], NOW, LIMIT)
    assert (d.act, d.mode) == (True, "direct")
    assert guard.decide(alert(), state("pr"), [], NOW, LIMIT).mode == "pr"


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"status": "resolved"}, "resolved, not firing"),
        ({"action": ""}, "no action=rollback"),
        ({"action": "page"}, "no action=rollback"),
        ({"release": ""}, "no release label"),
    ],
)
def test_alerts_that_are_not_for_the_guard(labels: dict[str, str], why: str) -> None:
    d = guard.decide(alert(**labels), state(), [], NOW, LIMIT)
    assert not d.act
    assert why in d.reason


def test_auto_rollback_off_does_nothing() -> None:
    d = guard.decide(alert(), state("off"), [], NOW, LIMIT)
    assert not d.act
    assert "auto_rollback is off" in d.reason


def test_compare_and_swap_never_reverts_a_newer_release() -> None:
    d = guard.decide(alert(release=record(1).release_id), state(), [], NOW, LIMIT)
    assert not d.act
    assert "no longer serves" in d.reason
    assert not guard.decide(alert(model="other"), state(), [], NOW, LIMIT).act


def test_one_fingerprint_is_acted_on_once_however_old() -> None:
    old = [guard.Acted("abc123", NOW - dt.timedelta(days=30))]
    d = guard.decide(alert(), state(), old, NOW, LIMIT)
    assert not d.act
    assert "already acted on fingerprint abc123" in d.reason


def test_at_most_n_rollbacks_per_window() -> None:
    recent = [guard.Acted(f"f{i}", NOW - dt.timedelta(minutes=10 * i)) for i in (1, 2)]
    d = guard.decide(alert(), state(), recent, NOW, LIMIT)
    assert not d.act
    assert "rate limit" in d.reason
    older = [
        guard.Acted("f1", NOW - dt.timedelta(minutes=10)),
        guard.Acted("f2", NOW - LIMIT.window),
    ]
    assert guard.decide(alert(), state(), older, NOW, LIMIT).act


def test_the_trailers_carry_the_alerts_facts_on_one_line_each() -> None:
    a = alert()
    a.annotations["summary"] = "inputs\ndrifted: Evil-Trailer: x"
    fields = guard.alert_trailers(a)
    assert fields == {
        "Rollback-Reason": "inputs drifted: Evil-Trailer: x",
        "Alert": "ModelInputDrift",
        "Alert-Fingerprint": "abc123",
        "Alert-Started-At": "2026-12-06T11:50:00Z",
        "Alert-Value": "0.42",
        "Alert-Source": "http://prometheus:9090/graph?g0.expr=x",
    }
    assert guard.acted_from(fields, NOW) == guard.Acted("abc123", NOW)
    assert guard.acted_from({"Release-Id": "x"}, NOW) is None


def test_quarantine_adds_once_and_refuses() -> None:
    s = guard.quarantine(guard.quarantine(state(), "digits-2"), "digits-2")
    assert s.quarantined == ["digits-2"]
    assert guard.quarantine_refusal(s, "digits-1") is None
    why = guard.quarantine_refusal(s, "digits-2")
    assert why is not None
    assert "quarantined in staging" in why

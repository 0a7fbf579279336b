"""The guard's decisions: may this alert roll its release back, and how? Pure, no I/O.

The guard (``mlops guard serve``) hands each alert of an Alertmanager webhook here together with
what git says: the environment's state on the GitOps branch's tip, and the guard's earlier
rollbacks (read back from their commits' trailers, so a restarted guard, or a second replica,
knows them too). Every "no" carries the reason the guard logs.

The rules, in order (DESIGN.md "Alerts"):
- only a firing alert labelled ``action=rollback`` is acted on, and it must name its model,
  environment and release;
- the environment's ``auto_rollback`` policy must allow it (``off`` never);
- compare-and-swap: the release named in the alert must still be the one serving there, so a
  newer release is never reverted;
- never twice for one fingerprint (Alertmanager repeats a firing alert every repeat_interval);
- at most ``max_rollbacks`` automatic rollbacks per environment per ``window``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pipelines.config.schema import EnvironmentState

# The trailers a guard rollback carries (besides the rollback's own), in commit order.
REASON = "Rollback-Reason"
ALERT = "Alert"
FINGERPRINT = "Alert-Fingerprint"
STARTED_AT = "Alert-Started-At"
VALUE = "Alert-Value"
SOURCE = "Alert-Source"  # the alert's generatorURL: the expression in Prometheus

Mode = Literal["pr", "direct"]


@dataclass(frozen=True)
class Alert:
    """One alert of a webhook, reduced to what the guard reads."""

    status: str  # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        """The alert's name (``alertname``)."""
        return self.labels.get("alertname", "")

    @property
    def environment(self) -> str:
        """The environment the alert is about."""
        return self.labels.get("environment", "")

    @property
    def model(self) -> str:
        """The model the alert is about."""
        return self.labels.get("model", "")

    @property
    def release(self) -> str:
        """The release the alert blames: the guard acts only while it is active."""
        return self.labels.get("release", "")


@dataclass(frozen=True)
class Acted:
    """An earlier guard rollback, as its commit records it."""

    fingerprint: str
    at: dt.datetime  # the commit's time


@dataclass(frozen=True)
class RateLimit:
    """At most ``max_rollbacks`` automatic rollbacks per environment within ``window``."""

    max_rollbacks: int
    window: dt.timedelta


@dataclass(frozen=True)
class Decision:
    """Whether the guard acts on an alert, why (not), and how."""

    act: bool
    reason: str  # why (not): one line for the log and the webhook's answer
    mode: Mode | None = None  # how, when act


def relevant(alert: Alert) -> str | None:
    """Why the alert is none of the guard's business (None: it asks for a rollback)."""
    if alert.status != "firing":
        return f"alert is {alert.status}, not firing"
    if alert.labels.get("action") != "rollback":
        return "alert has no action=rollback label"
    missing = [k for k in ("environment", "model", "release") if not alert.labels.get(k)]
    if missing:
        return f"alert has no {', '.join(missing)} label"
    if not alert.fingerprint:
        return "alert has no fingerprint"
    return None


def serving(state: EnvironmentState, model: str) -> str | None:
    """The release id serving ``model`` in ``state`` (None: the model is not deployed)."""
    slot = state.models.get(model)
    record = slot.color(slot.active) if slot is not None and slot.active else None
    return record.release_id if record is not None else None


def decide(
    alert: Alert,
    state: EnvironmentState,
    history: Iterable[Acted],
    now: dt.datetime,
    limit: RateLimit,
) -> Decision:
    """Whether to roll ``alert``'s release back in ``state``'s environment, and how."""
    why = relevant(alert)
    if why is not None:
        return Decision(False, why)
    if state.auto_rollback == "off":
        return Decision(False, f"auto_rollback is off in {state.environment}")
    active = serving(state, alert.model)
    if active is None:
        return Decision(False, f"{alert.model} is not deployed in {state.environment}")
    if active != alert.release:
        return Decision(
            False,
            f"{alert.release} no longer serves {alert.model} in {state.environment} "
            f"({active} does): not reverting a newer release",
        )
    acted = list(history)
    if any(a.fingerprint == alert.fingerprint for a in acted):
        return Decision(False, f"already acted on fingerprint {alert.fingerprint}")
    recent = [a for a in acted if now - a.at < limit.window]
    if len(recent) >= limit.max_rollbacks:
        return Decision(
            False,
            f"rate limit: {len(recent)} automatic rollback(s) in {state.environment} within "
            f"{limit.window} (at most {limit.max_rollbacks})",
        )
    return Decision(True, f"roll {alert.model} back from {alert.release}", state.auto_rollback)


def alert_trailers(alert: Alert) -> dict[str, str]:
    """The alert's facts, as the rollback commit's trailers. One line each: a value with a
    line break would end the trailer block early, so they are flattened."""
    fields = {
        REASON: alert.annotations.get("summary") or alert.name,
        ALERT: alert.name,
        FINGERPRINT: alert.fingerprint,
        STARTED_AT: alert.starts_at,
        VALUE: alert.annotations.get("value", ""),
        SOURCE: alert.generator_url,
    }
    return {k: " ".join(v.split()) for k, v in fields.items() if v.strip()}


def acted_from(trailers: dict[str, str], at: dt.datetime) -> Acted | None:
    """The guard rollback a commit's trailers record (None: the commit is not one)."""
    fingerprint = trailers.get(FINGERPRINT, "")
    return Acted(fingerprint, at) if fingerprint else None


def quarantine(state: EnvironmentState, release_id: str) -> EnvironmentState:
    """``state`` with ``release_id`` added to its quarantined releases (once, sorted)."""
    ids = sorted({*state.quarantined, release_id})
    return state.model_copy(update={"quarantined": ids})


def quarantine_refusal(state: EnvironmentState, release_id: str) -> str | None:
    """Why ``release_id`` may not be released or promoted into ``state`` (None: it may)."""
    if release_id not in state.quarantined:
        return None
    return (
        f"{release_id} is quarantined in {state.environment}: the guard rolled it back "
        "after an alert"
    )


def quarantined_anywhere(states: Iterable[EnvironmentState], release_id: str) -> str | None:
    """Why ``release_id`` may not be promoted anywhere: a guard quarantined it in one of
    ``states`` (None: none did). A release rolled back in staging must not reach production
    through a promotion request opened before the alert."""
    return next(
        (why for state in states if (why := quarantine_refusal(state, release_id)) is not None),
        None,
    )

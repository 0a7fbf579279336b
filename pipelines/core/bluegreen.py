"""Blue-green state transitions, as pure functions of the environment state.

Invariants every transition keeps (property-tested): once anything is deployed, exactly one
color is active and it holds a release; the preview is always the other color; the release
that was serving before a release or a rollback is still deployed afterwards, in the idle
color, so that a rollback is a flip of the Service selector and nothing has to start.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import EnvironmentState, ModelSlot, ReleaseRecord


class NoPreviousRelease(Exception):
    """Rollback asked for where no earlier release is deployed."""


@dataclass(frozen=True)
class Transition:
    slot: ModelSlot
    changed: bool
    color: str  # the color now active
    replaced: ReleaseRecord | None = None  # what the idle color held before (overwritten)


def release(slot: ModelSlot, candidate: ReleaseRecord) -> Transition:
    """Put ``candidate`` into the idle color and make it active.

    Releasing what already serves is a no-op. A candidate that sits in the idle color (after a
    rollback, say) is re-activated with its record refreshed.
    """
    if slot.active is not None:
        serving = slot.color(slot.active)
        if serving is not None and serving.release_id == candidate.release_id:
            return Transition(slot, False, slot.active)
    target = slot.idle or "blue"
    replaced = slot.color(target)
    new = slot.model_copy(update={target: candidate, "active": target})
    return Transition(ModelSlot.model_validate(new.model_dump()), True, target, replaced)


def rollback(slot: ModelSlot) -> Transition:
    """Flip the active color back to the release in the idle color."""
    if slot.active is None:
        raise NoPreviousRelease("nothing is deployed here yet")
    idle = "green" if slot.active == "blue" else "blue"
    if slot.color(idle) is None:
        serving = slot.color(slot.active)
        raise NoPreviousRelease(
            f"only one release has been deployed here ({serving.release_id if serving else '?'});"
            " there is no previous release to return to")
    return Transition(slot.model_copy(update={"active": idle}), True, idle)


def with_slot(state: EnvironmentState, model: str, slot: ModelSlot) -> EnvironmentState:
    models = dict(state.models)
    models[model] = slot
    return state.model_copy(update={"models": models})


@dataclass(frozen=True)
class LiveDeployment:
    color: str
    image: str
    ready: int
    desired: int


def compare_live(slot: ModelSlot, deployments: dict[str, LiveDeployment],
                 service_color: str | None) -> list[str]:
    """Where the cluster differs from git (empty: in sync and ready)."""
    findings = []
    for color in ("blue", "green"):
        record, live = slot.color(color), deployments.get(color)
        if record is None and live is not None:
            findings.append(f"{color}: deployed in the cluster but not in git")
        elif record is not None and live is None:
            findings.append(f"{color}: {record.release_id} is in git but not deployed")
        elif record is not None and live is not None:
            if live.image != record.image:
                findings.append(f"{color}: the cluster runs {live.image}, git says "
                                f"{record.image}")
            if live.ready < live.desired:
                findings.append(f"{color}: {live.ready}/{live.desired} pods ready")
    if service_color != slot.active:
        findings.append(f"the Service selects {service_color or 'nothing'}, git says "
                        f"{slot.active or 'nothing'}")
    return findings


def age(released_at: str, now: str) -> str:
    """'3d 4h' between two ISO-8601 UTC stamps (YYYY-MM-DDTHH:MM:SSZ)."""
    import datetime as dt

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    seconds = int((dt.datetime.strptime(now, fmt) - dt.datetime.strptime(released_at, fmt))
                  .total_seconds())
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m"

"""Blue-green state transitions, as pure functions of the environment state.

Invariants every transition keeps (property-tested): once anything is deployed, exactly one
color is active and it holds a release; the preview is always the other color; the release
that was serving before a release or a rollback is still deployed afterwards, in the idle
color, so that a rollback is a flip of the Service selector and nothing has to start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pipelines.config.schema import EnvironmentState, ModelSlot, ReleaseRecord


class NoPreviousRelease(Exception):
    """Rollback asked for where no earlier release is deployed."""


class WouldReactivate(NoPreviousRelease):
    """The idle color holds the release that the last rollback took out of service: rolling
    back again would put it back, which is an undo of that rollback, not a rollback."""

    def __init__(self, release_id: str, serving: str, color: str) -> None:
        super().__init__(
            f"the previous rollback took {release_id} out of service; rolling back again would "
            f"make {release_id} ({color}) serve instead of {serving}"
        )
        self.release_id = release_id


@dataclass(frozen=True)
class Transition:
    """The outcome of a transition: the new slot, whether it changed, and what was overwritten."""

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


def rolled_back_from(slot: ModelSlot, env: str, history: Iterable[Mapping[str, str]]) -> str | None:
    """The release a rollback took out of service to make the serving release serve, if a
    rollback is how it came to serve; else None.

    ``history`` holds the trailers of the GitOps commits that changed ``env``, newest first.
    The commit that made the serving release serve is the newest one naming it in Release-Id
    (releases, promotions, their merges and rollbacks all do); its Rollback-Of, if any, names
    the release it replaced.
    """
    serving = slot.color(slot.active) if slot.active else None
    if serving is None:
        return None
    for fields in history:
        if fields.get("Environment", env) != env:
            continue
        if fields.get("Release-Id") == serving.release_id:
            return fields.get("Rollback-Of") or None
    return None


def rollback(
    slot: ModelSlot, rolled_back: str | None = None, *, reactivate: bool = False
) -> Transition:
    """Flip the active color back to the release in the idle color.

    ``rolled_back`` is what the last rollback took out of service (``rolled_back_from``): if the
    idle color still holds it, flipping would silently undo that rollback, so it is refused
    unless ``reactivate`` says that is what is wanted.
    """
    if slot.active is None:
        raise NoPreviousRelease("nothing is deployed here yet")
    idle = "green" if slot.active == "blue" else "blue"
    serving = slot.color(slot.active)
    waiting = slot.color(idle)
    if waiting is None:
        raise NoPreviousRelease(
            f"only one release has been deployed here ({serving.release_id if serving else '?'});"
            " there is no previous release to return to"
        )
    if rolled_back is not None and waiting.release_id == rolled_back and not reactivate:
        raise WouldReactivate(rolled_back, serving.release_id if serving else "?", idle)
    return Transition(slot.model_copy(update={"active": idle}), True, idle)


def with_slot(state: EnvironmentState, model: str, slot: ModelSlot) -> EnvironmentState:
    """A copy of the state with one model's slot replaced; the input state is left as it was."""
    models = dict(state.models)
    models[model] = slot
    return state.model_copy(update={"models": models})


@dataclass(frozen=True)
class LiveDeployment:
    """What the cluster reports for one color's Deployment: its image and replica counts."""

    color: str
    image: str
    ready: int
    desired: int


def compare_live(
    slot: ModelSlot, deployments: dict[str, LiveDeployment], service_color: str | None
) -> list[str]:
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
                findings.append(f"{color}: the cluster runs {live.image}, git says {record.image}")
            if live.ready < live.desired:
                findings.append(f"{color}: {live.ready}/{live.desired} pods ready")
    if service_color != slot.active:
        findings.append(
            f"the Service selects {service_color or 'nothing'}, git says {slot.active or 'nothing'}"
        )
    return findings


def age(released_at: str, now: str) -> str:
    """'3d 4h' between two ISO-8601 UTC stamps (YYYY-MM-DDTHH:MM:SSZ)."""
    import datetime as dt

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    seconds = int(
        (dt.datetime.strptime(now, fmt) - dt.datetime.strptime(released_at, fmt)).total_seconds()
    )
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m"

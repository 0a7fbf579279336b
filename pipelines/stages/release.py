"""release: put the verified candidate into the idle color of an environment and flip the
active Service to it, as one commit in the GitOps repository.

The commit holds the new environment state and its re-rendered manifests, and carries the
provenance trailers (Release-Id, Model-Sha256, Data-Md5, Image-Digest, Source-Commit, Gate).
A push refused because the branch moved is re-applied on the new tip, a bounded number of
times; releasing what already serves makes no commit. Environments whose promotion mode is
``pr`` (production) cannot be released to directly: they change through ``mlops promote``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.adapters import gitops
from pipelines.adapters.releasing import (
    Progress,
    apply_state,
    land,
    now,
    require_capacity,
    trailers,
)
from pipelines.config import EnvironmentState, ModelSlot, ReleaseRecord, Workspace, load_gitops
from pipelines.core import bluegreen
from pipelines.core.guard import quarantine_refusal
from pipelines.errors import CheckFailed, ConfigError
from pipelines.evidence import require_blessing, require_infra_blessing, require_package


@dataclass(frozen=True)
class Landed:
    """The GitOps commit a release made (None if already in place), and what it did."""

    commit: str | None  # None: nothing to do (already in place)
    detail: str


def candidate(ws: Workspace) -> ReleaseRecord:
    """The release record of the blessed, packaged and verified candidate in artifacts/."""
    blessing = require_blessing(ws)
    record = require_package(ws)
    require_infra_blessing(ws)
    c = blessing.candidate
    return ReleaseRecord(
        release_id=record.release_id,
        image=record.image,
        model_sha256=record.model_sha256,
        model_artifact=record.model_artifact,
        data_md5=record.data_md5,
        source_commit=record.source_commit,
        gate="blessed",
        metrics={k: round(v, 6) for k, v in c.headline().items()},
        released_at=now(),
    )


def refuse_quarantined(state: EnvironmentState, release_id: str) -> None:
    """A release the guard took out of service stays out until a person says otherwise: no
    automation may re-release it (argocd-image-updater#1249)."""
    why = quarantine_refusal(state, release_id)
    if why is not None:
        env = state.environment
        raise CheckFailed(
            why,
            hint=f"release a fixed model instead; to allow {release_id} again, remove it from "
            f"quarantined in environments/{env}.yaml on the GitOps branch in a reviewed "
            "commit, then re-run",
        )


def publish(
    root: Path, ws: Workspace, env: str, record: ReleaseRecord, progress: Progress = print
) -> Landed:
    """Release ``record`` to ``env`` (the part shared by `mlops release` and tests)."""
    cfg = load_gitops(root)
    outcome: dict[str, Any] = {}
    with gitops.checkout(cfg, root) as repo:

        def change() -> str | None:
            state = repo.read_state(env)
            if state.promotion == "pr":
                raise ConfigError(
                    f"{env} changes only through promotion pull requests",
                    hint=f"run `mlops promote --to {env}`",
                )
            refuse_quarantined(state, record.release_id)
            slot = state.models.get(ws.name, ModelSlot())
            t = bluegreen.release(slot, record)
            if not t.changed:
                outcome["detail"] = f"{record.release_id} already serves {env}; no commit"
                return None
            new_state = bluegreen.with_slot(state, ws.name, t.slot)
            require_capacity(ws, cfg, new_state)
            apply_state(repo, ws, cfg, new_state)
            before = slot.color(slot.active) if slot.active else None
            outcome["detail"] = f"{record.release_id} now serves {env} ({t.color})" + (
                f"; {before.release_id} stays warm in {slot.active}" if before else ""
            )
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in record.metrics.items())
            return gitops.format_message(
                f"release({env}): {ws.name} {record.release_id} to {t.color}",
                f"{metrics}.\nPreviously serving: "
                f"{before.release_id + ' (' + str(slot.active) + ')' if before else 'nothing'}.",
                trailers(record, env, t.color),
            )

        sha = land(repo, cfg, cfg.branch, change, progress)
    return Landed(sha, str(outcome.get("detail", "")))


def run(ws: Workspace, env: str, progress: Progress = print) -> Landed:
    """Release the verified candidate into env."""
    return publish(ws.root, ws, env, candidate(ws), progress)

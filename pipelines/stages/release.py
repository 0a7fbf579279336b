"""release: put the verified candidate into the idle color of an environment and flip the
active Service to it, as one commit in the GitOps repository.

The commit holds the new environment state and its re-rendered manifests, and carries the
provenance trailers (Release-Id, Model-Sha256, Data-Md5, Image-Digest, Source-Commit, Gate).
A push refused because the branch moved is re-applied on the new tip, a bounded number of
times; releasing what already serves makes no commit. Environments whose promotion mode is
``pr`` (production) cannot be released to directly: they change through ``mlops promote``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.adapters import gitops
from pipelines.config import (
    EnvironmentState,
    GitOpsConfig,
    ModelSlot,
    ReleaseRecord,
    Workspace,
    inside,
    load_gitops,
)
from pipelines.core import bluegreen
from pipelines.errors import CheckFailed, ConfigError, InfraError
from pipelines.stages import render
from pipelines.stages.gate import require_blessing
from pipelines.stages.package import require_package
from pipelines.stages.verify import require_infra_blessing

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Landed:
    commit: str | None  # None: nothing to do (already in place)
    detail: str


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def candidate(ws: Workspace) -> ReleaseRecord:
    """The release record of the blessed, packaged and verified candidate in artifacts/."""
    blessing = require_blessing(ws)
    record = require_package(ws)
    require_infra_blessing(ws)
    c = blessing["candidate"]
    return ReleaseRecord(
        release_id=record["release_id"],
        image=record["image"],
        model_sha256=record["model_sha256"],
        model_artifact=record["model_artifact"],
        data_md5=record["data_md5"],
        source_commit=record["source_commit"],
        gate="blessed",
        metrics={k: round(float(c[k]), 6) for k in ("accuracy", "macro_f1") if k in c},
        released_at=now(),
    )


def trailers(record: ReleaseRecord, env: str, color: str, **extra: str) -> dict[str, str]:
    return {
        "Release-Id": record.release_id,
        "Model-Sha256": record.model_sha256,
        "Data-Md5": record.data_md5,
        "Image-Digest": record.image,
        "Source-Commit": record.source_commit,
        "Gate": record.gate,
        "Environment": env,
        "Color": color,
        **extra,
    }


def apply_state(
    repo: gitops.Checkout, ws: Workspace, cfg: GitOpsConfig, new_state: EnvironmentState
) -> render.Rendering:
    """Write ``new_state``, its environment's rendered/ and the controller objects (they list
    every environment's namespace, so a namespace edit that landed on the tip meanwhile is
    carried into them). Every other environment's rendered/ is left as it is: it changes only
    through a release or promotion of its own, so a staging release made with new templates
    never changes what production runs. Refuses (nothing written) anything that breaks schema
    or policy, a GitOps path that leaves the checkout, and another environment whose state
    file was edited since its rendering in a way the rendering would show: the controller
    objects would then point at objects that do not match them."""
    inside(repo.work, repo.manifests, "the GitOps path (gitops.yaml path, MLOPS_GITOPS_PATH)")
    env = new_state.environment
    states = render.read_states(repo.manifests)
    states[env] = new_state
    for other, state in sorted(states.items()):
        if other != env:
            require_state_rendered(repo, ws, cfg, state)
    rendering = render.render_with(ws.root, repo.manifests, cfg, states)
    render.require_clean(rendering, env)
    repo.write_state(new_state)
    render.write(repo.manifests, rendering.files, env, controllers=True)
    return rendering


def require_state_rendered(
    repo: gitops.Checkout, ws: Workspace, cfg: GitOpsConfig, state: EnvironmentState
) -> None:
    """The tip's rendered/<env>/ was made from <env>'s state as it is now (the same templates
    render both states alike), else an edit of environments/<env>.yaml has not been rendered."""
    env = state.environment
    before = repo.rendered_state(env)
    if before == state:
        return
    if before is None or (
        render.render_environment(ws.root, before, cfg)
        != render.render_environment(ws.root, state, cfg)
    ):
        raise CheckFailed(
            f"environments/{env}.yaml on the GitOps branch was changed without rendering "
            f"rendered/{env}/ (a hand edit?)",
            hint=f"this change does not touch {env}: render it where it is reviewed (`mlops "
            f"render --env {env}` in a checkout of the GitOps repository, or `mlops promote "
            f"--to {env}`), then re-run; nothing was pushed",
        )


def land(
    repo: gitops.Checkout,
    cfg: GitOpsConfig,
    branch: str,
    change: Callable[[], str | None],
    progress: Progress,
) -> str | None:
    """Apply ``change`` (returns a commit message, or None when there is nothing to do), commit
    and push; on a moved branch, sync and re-apply. The remote gets the whole commit or none."""
    last = ""
    for attempt in range(1, cfg.push_attempts + 1):
        message = change()
        if message is None:
            return None
        sha = repo.commit(message)
        if sha is None:
            return None
        try:
            repo.push(branch)  # any refusal but a lost race raises InfraError here, at once
            return sha
        except gitops.PushRejected as exc:
            last = str(exc)
            pause = gitops.back_off(attempt)
            progress(
                f"  {branch} moved on; re-applying on the new tip ({attempt}/"
                f"{cfg.push_attempts}) after {pause:.2f} s"
            )
            repo.sync(branch)
    raise InfraError(
        f"the push to {branch} lost the race to other pushes {cfg.push_attempts} "
        f"times in a row (last: {last})",
        hint="re-run; if it persists, something else pushes to "
        f"{branch} continuously (push_attempts in manifests/gitops.yaml bounds "
        "the retries)",
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
            slot = state.models.get(ws.name, ModelSlot())
            t = bluegreen.release(slot, record)
            if not t.changed:
                outcome["detail"] = f"{record.release_id} already serves {env}; no commit"
                return None
            apply_state(repo, ws, cfg, bluegreen.with_slot(state, ws.name, t.slot))
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
    return publish(ws.root, ws, env, candidate(ws), progress)

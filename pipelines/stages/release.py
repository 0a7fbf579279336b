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
import random
import time
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
from pipelines.errors import ConfigError, InfraError
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
        release_id=record["release_id"], image=record["image"],
        model_sha256=record["model_sha256"], model_artifact=record["model_artifact"],
        data_md5=record["data_md5"], source_commit=record["source_commit"], gate="blessed",
        metrics={k: round(float(c[k]), 6) for k in ("accuracy", "macro_f1") if k in c},
        released_at=now())


def trailers(record: ReleaseRecord, env: str, color: str, **extra: str) -> dict[str, str]:
    return {"Release-Id": record.release_id, "Model-Sha256": record.model_sha256,
            "Data-Md5": record.data_md5, "Image-Digest": record.image,
            "Source-Commit": record.source_commit, "Gate": record.gate,
            "Environment": env, "Color": color, **extra}


def apply_state(repo: gitops.Checkout, ws: Workspace, cfg: GitOpsConfig,
                new_state: EnvironmentState) -> render.Rendering:
    """Write ``new_state`` and re-render everything the states derive: every environment's
    rendered/ and the controller objects (which list every namespace), so that an edit of
    another environment that landed on the tip meanwhile (its namespace, say) leaves the commit
    consistent: `mlops render --check` on it is clean. Refuses anything that breaks schema or
    policy, and a GitOps path that leaves the checkout."""
    inside(repo.work, repo.manifests, "the GitOps path (gitops.yaml path, MLOPS_GITOPS_PATH)")
    states = render.read_states(repo.manifests)
    states[new_state.environment] = new_state
    rendering = render.render_with(ws.root, repo.manifests, cfg, states)
    render.require_clean(rendering)
    repo.write_state(new_state)
    render.write(repo.manifests, rendering.files)
    return rendering


def land(repo: gitops.Checkout, cfg: GitOpsConfig, branch: str,
         change: Callable[[], str | None], progress: Progress) -> str | None:
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
            # Jitter: racing releases that back off in lockstep would collide again.
            pause = random.uniform(0.05, 0.25) * attempt
            progress(f"  {branch} moved on; re-applying on the new tip ({attempt}/"
                     f"{cfg.push_attempts}) in {pause:.2f} s")
            time.sleep(pause)
            repo.sync(branch)
    raise InfraError(f"the push to {branch} lost the race to other pushes {cfg.push_attempts} "
                     f"times in a row (last: {last})",
                     hint="re-run; if it persists, something else pushes to "
                     f"{branch} continuously (push_attempts in manifests/gitops.yaml bounds "
                     "the retries)")


def publish(root: Path, ws: Workspace, env: str, record: ReleaseRecord,
            progress: Progress = print) -> Landed:
    """Release ``record`` to ``env`` (the part shared by `mlops release` and tests)."""
    cfg = load_gitops(root)
    outcome: dict[str, Any] = {}
    with gitops.checkout(cfg, root) as repo:

        def change() -> str | None:
            state = repo.read_state(env)
            if state.promotion == "pr":
                raise ConfigError(f"{env} changes only through promotion pull requests",
                                  hint=f"run `mlops promote --to {env}`")
            slot = state.models.get(ws.name, ModelSlot())
            t = bluegreen.release(slot, record)
            if not t.changed:
                outcome["detail"] = f"{record.release_id} already serves {env}; no commit"
                return None
            apply_state(repo, ws, cfg, bluegreen.with_slot(state, ws.name, t.slot))
            before = slot.color(slot.active) if slot.active else None
            outcome["detail"] = (f"{record.release_id} now serves {env} ({t.color})"
                                 + (f"; {before.release_id} stays warm in "
                                    f"{slot.active}" if before else ""))
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in record.metrics.items())
            return gitops.format_message(
                f"release({env}): {ws.name} {record.release_id} to {t.color}",
                f"{metrics}.\nPreviously serving: "
                f"{before.release_id + ' (' + str(slot.active) + ')' if before else 'nothing'}.",
                trailers(record, env, t.color))

        sha = land(repo, cfg, cfg.branch, change, progress)
    return Landed(sha, str(outcome.get("detail", "")))


def run(ws: Workspace, env: str, progress: Progress = print) -> Landed:
    return publish(ws.root, ws, env, candidate(ws), progress)

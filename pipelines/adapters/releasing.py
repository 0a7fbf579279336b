"""What every change to the GitOps repository does: write an environment's new state with
its re-rendered manifests, check nothing else is stale, and land the commit with its trailers,
re-applying it on a branch that moved. Release, promote and rollback all go through here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from pipelines.adapters import capacity, gitops, scm
from pipelines.adapters import rendering as render
from pipelines.config import EnvironmentState, GitOpsConfig, ReleaseRecord, Workspace, inside
from pipelines.errors import CheckFailed, ConfigError, InfraError

Progress = Callable[[str], None]


def now() -> str:
    """The current UTC time as an ISO 8601 timestamp to the second."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trailers(record: ReleaseRecord, env: str, color: str, **extra: str) -> dict[str, str]:
    """The git trailers that record a release in the GitOps commit."""
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


def require_capacity(ws: Workspace, cfg: GitOpsConfig, state: EnvironmentState) -> None:
    """Refuse (exit 1, with the plan; before anything is written) a new state whose peak,
    every model with both colors at their HPA maximum plus the Jobs, does not fit the
    environment's node pool. The pods are read from the objects it renders to."""
    capacity.require_fits(state, [o.obj for o in render.objects_of(ws.root, state, cfg)])


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


def close_requests(
    provider: scm.Provider,
    repo: gitops.Checkout,
    requests: Iterable[scm.PullRequest],
    marker: str,
    comment: str,
) -> tuple[tuple[int, ...], list[tuple[int, str]]]:
    """Comment ``comment`` on each request, close it and delete its branch. Returns those
    closed, and those left open with the reason: the caller's own change is already made, so a
    refusal here (a token that may comment but not close, say) is a warning, not a failure."""
    closed, left = [], []
    for old in requests:
        try:
            # Said first and true either way: a reviewer still sees why, should closing fail.
            provider.upsert_comment(old.number, marker, comment)
            provider.close(old.number)
        except (scm.ApiError, ConfigError, InfraError) as exc:
            left.append((old.number, str(exc)))
            continue
        # A branch left behind (a token without delete rights) is harmless once closed.
        repo.git("push", "--quiet", "origin", "--delete", old.head, check=False)
        closed.append(old.number)
    return tuple(closed), left

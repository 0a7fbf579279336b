"""promote: propose the release serving one environment (staging) for another (production).

Makes the branch ``promote/<env>/<release-id>`` holding the target's new state and rendered
YAML, pushes it, and opens the pull/merge request, or updates it in place when it exists. The
body carries the evidence, read from this workspace's artifacts, which must belong to exactly
the release being promoted. Merging the request is the deployment. With the local provider,
``mlops promote --merge`` plays the approval: a merge commit on the GitOps branch.

A promotion supersedes the open promotions to the same environment that were opened before
it: they get a comment naming the new request, are closed, and lose their branches, so a
reviewer can never approve an older release by mistake. Request numbers decide "before", so
two promotions racing each other leave exactly the newer one open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.adapters import gitops, scm
from pipelines.adapters import rendering as render
from pipelines.adapters.artifacts import MONITOR_REPORT, SBOM, monitor_dir
from pipelines.adapters.releasing import (
    apply_state,
    close_requests,
    land,
    now,
    require_capacity,
    trailers,
)
from pipelines.config import GitOpsConfig, ModelSlot, Workspace, environment_names, load_gitops
from pipelines.core import bluegreen, report
from pipelines.core.guard import quarantine_refusal, quarantined_anywhere
from pipelines.core.render import diff
from pipelines.errors import CheckFailed, ConfigError
from pipelines.evidence import (
    Blessing,
    InfraBlessing,
    PackagedRelease,
    ValidationSummary,
    at,
    load,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PromoteResult:
    """The release proposed, what happened, and the request opened or updated."""

    release_id: str
    detail: str
    url: str = ""
    number: int | None = None
    created: bool = False
    superseded: tuple[int, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """What a pipeline run left for one release: the promotion request shows all of it."""

    summary: ValidationSummary
    blessing: Blessing
    record: PackagedRelease
    infra: InfraBlessing


def evidence(ws: Workspace, release_id: str, image: str) -> Evidence:
    """The artifacts that prove ``release_id``; refuses evidence of any other release."""
    kinds = (ValidationSummary, Blessing, PackagedRelease, InfraBlessing)
    missing = [str(at(ws, k)) for k in kinds if not at(ws, k).is_file()]
    if missing:
        raise ConfigError(
            f"the evidence for {release_id} is incomplete: missing {missing}",
            hint="promote from the pipeline run that built this release",
        )
    proof = Evidence(
        summary=load(at(ws, ValidationSummary), ValidationSummary),
        blessing=load(at(ws, Blessing), Blessing),
        record=load(at(ws, PackagedRelease), PackagedRelease),
        infra=load(at(ws, InfraBlessing), InfraBlessing),
    )
    if proof.record.release_id != release_id or proof.infra.image != image:
        raise ConfigError(
            f"the artifacts here are for {proof.record.release_id}, not {release_id}",
            hint="promote from the pipeline run that built it",
        )
    if not (proof.blessing.blessed and proof.infra.blessed and proof.summary.success):
        raise CheckFailed(f"the evidence for {release_id} is not all green; refusing to promote")
    if proof.blessing.candidate.model_sha256 != proof.record.model_sha256:
        raise ConfigError("the blessing and the release record disagree on the model")
    return proof


def run(ws: Workspace, to_env: str, from_env: str, progress: Progress = print) -> PromoteResult:
    """Propose from_env's serving release for to_env as a pull request."""
    root = ws.root
    cfg = load_gitops(root)
    provider = scm.provider(cfg, root)
    with gitops.checkout(cfg, root) as repo:
        source = repo.read_state(from_env).models.get(ws.name, ModelSlot())
        serving = source.color(source.active) if source.active else None
        if serving is None:
            raise ConfigError(
                f"nothing of {ws.name} serves in {from_env} yet",
                hint=f"run `mlops release --env {from_env}` first",
            )
        proof = evidence(ws, serving.release_id, serving.image)
        candidate = serving.model_copy(update={"released_at": now()})
        target = repo.read_state(to_env)
        why = quarantine_refusal(target, serving.release_id)
        if why is not None:
            raise CheckFailed(
                why,
                hint=f"promote a fixed release instead; to allow {serving.release_id} again, "
                f"remove it from quarantined in environments/{to_env}.yaml on the GitOps "
                "branch in a reviewed commit, then re-run",
            )
        slot = target.models.get(ws.name, ModelSlot())
        t = bluegreen.release(slot, candidate)
        if not t.changed:
            return PromoteResult(
                serving.release_id, f"{serving.release_id} already serves {to_env}"
            )
        previous = slot.color(slot.active) if slot.active else None
        fields = trailers(candidate, to_env, t.color, **{"Promoted-From": from_env})
        message = gitops.format_message(
            f"promote({to_env}): {ws.name} {candidate.release_id} to {t.color}",
            f"Proposed from {from_env}.",
            fields,
        )

        def change() -> str:
            new_state = bluegreen.with_slot(repo.read_state(to_env), ws.name, t.slot)
            # Before anything is committed, on every re-application to a moved tip: a
            # promotion whose peak the target cannot hold would only surface as Pending pods
            # after the merge.
            require_capacity(ws, cfg, new_state)
            apply_state(repo, ws, cfg, new_state)
            return message

        if target.promotion == "direct":
            sha = land(repo, cfg, cfg.branch, change, progress)
            if sha is None:
                return PromoteResult(
                    candidate.release_id, f"nothing committed: {to_env} already had this change"
                )
            return PromoteResult(
                candidate.release_id,
                f"{candidate.release_id} now serves {to_env} ({t.color}); "
                f"committed {sha[:12]} to {cfg.branch}",
            )

        before = render.on_disk(repo.manifests, to_env)
        repo.commit(change())
        after = render.on_disk(repo.manifests, to_env)
        branch = scm.request_branch("promote", to_env, candidate.release_id)
        repo.push_request_branch(branch)  # ours: re-running the promotion updates it
        body = report.promotion_body(
            env=to_env,
            source_env=from_env,
            release=candidate.model_dump(),
            previous=previous.release_id if previous else None,
            summary=proof.summary.model_dump(mode="json"),
            blessing=proof.blessing.model_dump(mode="json"),
            infra=proof.infra.model_dump(mode="json"),
            diff=diff(_names(before), _names(after)),
            sbom=f"`{SBOM}` (sha256 `{proof.record.sbom_sha256}`), CycloneDX 1.6",
            monitor=_monitor_report(root, to_env),
            tuned=ws.tuned.model_dump(mode="json", exclude_none=True) if ws.tuned else None,
        )
        pr = provider.open_or_update(
            head=branch,
            base=cfg.branch,
            title=f"Promote {ws.name} {candidate.release_id} to {to_env}",
            body=body,
        )
        closed, left = supersede(
            provider, repo, pr, scm.request_branch("promote", to_env), candidate.release_id
        )
    verb = "opened" if pr.created else "updated"
    detail = (
        f"{verb} #{pr.number} ({branch}); {candidate.release_id} serves {to_env} once "
        "it is approved and merged"
    )
    if closed:
        detail += "; closed superseded " + ", ".join(f"#{n}" for n in closed)
    for number, why in left:
        progress(f"warning: superseded #{number} is still open, close it by hand: {why}")
        detail += f"; could not close superseded #{number}"
    return PromoteResult(candidate.release_id, detail, pr.url, pr.number, pr.created, closed)


def _monitor_report(root: Path, env: str) -> str | None:
    """The target environment's `mlops monitor` report, when this run made one: the scheduled
    retraining job does, so its promotion says which drift led to it."""
    path = monitor_dir(root, env) / MONITOR_REPORT
    return path.read_text(encoding="utf-8") if path.is_file() else None


SUPERSEDED = "<!-- mlops:superseded -->"


def supersede(
    provider: scm.Provider, repo: gitops.Checkout, pr: scm.PullRequest, prefix: str, release_id: str
) -> tuple[tuple[int, ...], list[tuple[int, str]]]:
    """Close the open requests from ``prefix`` branches opened before ``pr``."""
    older = [
        old
        for old in provider.list_open(base=pr.base)
        if old.head.startswith(prefix) and old.number < pr.number
    ]
    return close_requests(
        provider,
        repo,
        older,
        SUPERSEDED,
        f"Superseded by #{pr.number}, which promotes {release_id}.",
    )


def _refuse_quarantined_promotion(repo: gitops.Checkout, head: str) -> None:
    """A promotion opened before the guard quarantined its release must not merge: the guard
    closes such requests, but one it could not close (or reopened by hand) is checked again
    here, against every environment's state on the tip being merged into."""
    parsed = scm.parse_request_branch(head)
    if parsed is None or parsed[0] != "promote":
        return
    release_id = parsed[2]
    states = [repo.read_state(env) for env in environment_names(repo.manifests)]
    why = quarantined_anywhere(states, release_id)
    if why is not None:
        raise CheckFailed(
            f"not merging the promotion of {release_id}: {why}",
            hint="promote a fixed release instead; to allow this one again, remove it from "
            "quarantined in that environment's state in a reviewed commit",
        )


def _names(files: dict[str, str]) -> dict[str, str]:
    return {path.rsplit("/", 1)[-1]: text for path, text in files.items()}


def _renders_as_committed(
    ws: Workspace, repo: gitops.Checkout, cfg: GitOpsConfig, env: str
) -> bool:
    """``env``'s rendering and the controller objects are what its state renders (the other
    environments are not this request's: they may lag behind newer templates)."""
    rendering = render.render_with(ws.root, repo.manifests, cfg)
    return (
        not rendering.violations_of(env)
        and render.stale_diff(repo.manifests, rendering.files, env, controllers=True) == ""
    )


def _command(kind: str, env: str) -> str:
    """The command that opens a request of ``kind`` (promote, rollback) for ``env``."""
    return f"mlops {kind} {'--env' if kind == 'rollback' else '--to'} {env}"


def merge_local(ws: Workspace, prefix: str, progress: Progress = print) -> str:
    """Approve and merge the newest open local request whose branch starts with ``prefix``."""
    cfg = load_gitops(ws.root)
    provider = scm.provider(cfg, ws.root)
    if not isinstance(provider, scm.Local):
        raise ConfigError(
            f"--merge plays the approval for the local provider only; with "
            f"{cfg.provider}, review and merge the request there"
        )
    candidates = [
        (pr, doc)
        for pr, doc in provider.open_prs()
        if pr.head.startswith(prefix) and pr.base == cfg.branch
    ]
    kind, env = prefix.split("/")[:2]
    if not candidates:
        raise ConfigError(
            f"no open {kind} request for {env} (no open request from a {prefix}* branch)",
            hint=f"open one first: `{_command(kind, env)}`"
            + (
                f" (where {env}'s rollback mode is direct, that rolls back at "
                "once, with no request)"
                if kind == "rollback"
                else ""
            ),
        )
    pr, doc = candidates[-1]
    fields: dict[str, str] = {}
    with gitops.checkout(cfg, ws.root) as repo:

        def change() -> str | None:
            repo.git(
                "fetch", "--quiet", "origin", f"+refs/heads/{pr.head}:refs/remotes/origin/{pr.head}"
            )
            fields.update(
                gitops.trailers(repo.git("log", "-1", "--format=%B", f"origin/{pr.head}"))
            )
            fields["Approved-By"] = f"local reviewer (mlops {kind} --merge)"
            _refuse_quarantined_promotion(repo, pr.head)
            # --no-commit: land() makes the merge commit, with our message and trailers.
            merged = repo.git("merge", "--no-ff", "--no-commit", f"origin/{pr.head}", check=False)
            # A textual merge can succeed and still be wrong: rendered YAML from before a
            # change to the environment, beside the changed state. Both must agree.
            if (
                "CONFLICT" in merged
                or repo.git("ls-files", "--unmerged").strip()
                or not _renders_as_committed(ws, repo, cfg, env)
            ):
                repo.git("merge", "--abort", check=False)
                raise CheckFailed(
                    f"#{pr.number} no longer merges cleanly: its environment "
                    "(or the templates that render it) changed after it was "
                    "proposed",
                    hint=f"re-run `{_command(kind, env)}` to refresh it, then merge",
                )
            return gitops.format_message(
                f"Merge #{pr.number}: {doc['title']}",
                f"Merges {pr.head} into {cfg.branch}.",
                fields,
            )

        sha = land(repo, cfg, cfg.branch, change, progress)
        repo.git("push", "--quiet", "origin", "--delete", pr.head, check=False)
    if sha is None:
        provider.set_state(pr.number, "closed")
        return (
            f"closed #{pr.number} ({pr.head}) without a merge: {cfg.branch} already has its changes"
        )
    provider.set_state(pr.number, "merged")
    serving = fields.get("Release-Id")
    return f"merged #{pr.number} ({pr.head}) as {sha[:12]}" + (
        f"; {serving} now serves {env}" if serving else ""
    )

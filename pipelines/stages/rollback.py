"""rollback: flip an environment's active color back to the previous release.

The previous release still runs in the idle color (blue-green keeps it warm), so the rollback
is only a change of the Service selector: one commit, carrying ``Rollback-Of: <release-id>``,
or a pull request where the environment's rollback mode is ``pr``. Git and the cluster stay
equal: the controller syncs the commit like any other.

Rolling back twice in a row would flip back to the release the first rollback took out of
service; that is refused unless ``reactivate`` asks for it (the history's trailers decide,
see bluegreen.rolled_back_from).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipelines.adapters import gitops, scm
from pipelines.adapters.releasing import apply_state, land, trailers
from pipelines.config import ModelSlot, Workspace, load_gitops
from pipelines.core import bluegreen
from pipelines.errors import CheckFailed

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RollbackResult:
    """What serves after the rollback, what was taken out, and any request to approve."""

    restored: str  # the release that serves (or will, once the request is merged)
    rolled_back: str  # the release taken out of service
    detail: str  # the whole truth, one line: what changed, or what now awaits approval
    url: str = ""  # the request awaiting approval, in pr mode


def plan(
    repo: gitops.Checkout, ws: Workspace, env: str, slot: ModelSlot, reactivate: bool
) -> bluegreen.Transition:
    """The rollback of ``slot`` as the history on the checkout's tip allows it. Asked again on
    every retry: a rollback that landed meanwhile changes what this one would undo."""
    undone = bluegreen.rolled_back_from(slot, env, repo.history(env))
    try:
        return bluegreen.rollback(slot, undone, reactivate=reactivate)
    except bluegreen.WouldReactivate as exc:
        raise CheckFailed(
            f"not rolling {ws.name} back in {env}: {exc}",
            hint=f"to serve {exc.release_id} again anyway, re-run with --reactivate; to go "
            "back further, release the older model again (it is no longer deployed)",
        ) from None
    except bluegreen.NoPreviousRelease as exc:
        raise CheckFailed(
            f"cannot roll {ws.name} back in {env}: {exc}",
            hint="roll forward instead: release a fixed model",
        ) from None


def run(
    ws: Workspace, env: str, progress: Progress = print, *, reactivate: bool = False
) -> RollbackResult:
    """Roll env back to the release in its idle color (or reactivate it, if asked)."""
    cfg = load_gitops(ws.root)
    with gitops.checkout(cfg, ws.root) as repo:
        state = repo.read_state(env)
        slot = state.models.get(ws.name, ModelSlot())
        t = plan(repo, ws, env, slot, reactivate)
        current = slot.color(slot.active) if slot.active else None
        restored = t.slot.color(t.color)
        assert current is not None
        assert restored is not None
        message = gitops.format_message(
            f"rollback({env}): {ws.name} back to {restored.release_id} ({t.color})",
            f"{current.release_id} stops serving; it stays deployed in {slot.active} until the "
            "next release replaces it.",
            {**trailers(restored, env, t.color), "Rollback-Of": current.release_id},
        )

        def change() -> str | None:
            fresh = repo.read_state(env).models.get(ws.name, ModelSlot())
            if fresh.active != slot.active:
                return None  # someone else flipped it meanwhile: nothing left to do
            apply_state(
                repo,
                ws,
                cfg,
                bluegreen.with_slot(
                    repo.read_state(env), ws.name, plan(repo, ws, env, fresh, reactivate).slot
                ),
            )
            return message

        if state.rollback == "direct":
            sha = land(repo, cfg, cfg.branch, change, progress)
            if sha is None:
                return RollbackResult(
                    restored.release_id,
                    current.release_id,
                    f"nothing committed: {ws.name} in {env} changed while this rollback ran "
                    f"(it no longer served {current.release_id}); see `mlops status --env "
                    f"{env}`",
                )
            return RollbackResult(
                restored.release_id,
                current.release_id,
                f"{restored.release_id} serves {env} again (was "
                f"{current.release_id}); committed {sha[:12]}",
            )
        branch = scm.request_branch("rollback", env, current.release_id)
        if change() is None or repo.commit(message) is None:
            return RollbackResult(
                restored.release_id,
                current.release_id,
                f"nothing to propose: {env} already changed; see `mlops status --env {env}`",
            )
        repo.push_request_branch(branch)
        pr = scm.provider(cfg, ws.root).open_or_update(
            head=branch,
            base=cfg.branch,
            title=f"Roll {ws.name} back to {restored.release_id} in {env}",
            body=f"Rolls back {current.release_id}: merging this makes {restored.release_id} "
            f"serve {env} again (color {t.color}, still deployed). Until then "
            f"{current.release_id} keeps serving.\n",
        )
    verb = "opened" if pr.created else "updated"
    return RollbackResult(
        restored.release_id,
        current.release_id,
        f"{verb} #{pr.number} ({branch}) to roll {env} back to "
        f"{restored.release_id}; {current.release_id} serves until it is "
        "approved and merged",
        pr.url,
    )

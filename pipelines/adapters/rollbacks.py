"""Rolling an environment's active color back to the previous release: the mechanics shared by
``mlops rollback`` (a person) and ``mlops guard`` (an alert).

The previous release still runs in the idle color (blue-green keeps it warm), so the rollback
is only a change of the Service selector: one commit, carrying ``Rollback-Of: <release-id>``,
or a pull request where the mode is ``pr``. Git and the cluster stay equal: the controller syncs
the commit like any other.

Rolling back twice in a row would flip back to the release the first rollback took out of
service; that is refused unless ``reactivate`` asks for it (the history's trailers decide,
see bluegreen.rolled_back_from).

An automatic rollback (``Automatic``) differs in three ways: the guard's policy (the
environment's ``auto_rollback``) chooses commit or pull request; it is a compare-and-swap, so
it changes nothing unless the alert's release still serves on the tip it lands on, re-checked
on every re-apply; and the same commit quarantines the release it takes out of service, with
the alert's facts as trailers. It also closes the open promotion requests of that release,
so that a promotion proposed before the alert cannot carry it into another environment
(``mlops promote --merge`` re-checks the quarantine, for a request that could not be closed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pipelines.adapters import gitops, scm
from pipelines.adapters.releasing import apply_state, close_requests, land, trailers
from pipelines.config import EnvironmentState, ModelSlot, ReleaseRecord, Workspace, load_gitops
from pipelines.core import bluegreen
from pipelines.core import guard as rules
from pipelines.errors import CheckFailed

Progress = Callable[[str], None]
QUARANTINED = "<!-- mlops:quarantined -->"


@dataclass(frozen=True)
class RollbackResult:
    """What serves after the rollback, what was taken out, and any request to approve."""

    restored: str  # the release that serves (or will, once the request is merged)
    rolled_back: str  # the release taken out of service
    detail: str  # the whole truth, one line: what changed, or what now awaits approval
    url: str = ""  # the request awaiting approval, in pr mode
    commit: str = ""  # the commit made (on the GitOps branch, or the request's branch)


@dataclass(frozen=True)
class Automatic:
    """What the guard adds to a rollback: its mode, the release that must still serve for it
    to act (compare-and-swap), and the alert's trailers."""

    mode: Literal["pr", "direct"]
    expect: str
    trailers: dict[str, str] = field(default_factory=dict)


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


def _new_state(
    repo: gitops.Checkout,
    ws: Workspace,
    env: str,
    fresh: ModelSlot,
    reactivate: bool,
    removed: ReleaseRecord,
    auto: Automatic | None,
) -> EnvironmentState:
    state = bluegreen.with_slot(
        repo.read_state(env), ws.name, plan(repo, ws, env, fresh, reactivate).slot
    )
    return rules.quarantine(state, removed.release_id) if auto is not None else state


def roll_back(
    ws: Workspace,
    env: str,
    progress: Progress = print,
    *,
    reactivate: bool = False,
    auto: Automatic | None = None,
) -> RollbackResult:
    """Roll ``env`` back to its idle color's release, by hand or for the guard (``automatic``)."""
    cfg = load_gitops(ws.root)
    with gitops.checkout(cfg, ws.root) as repo:
        state = repo.read_state(env)
        slot = state.models.get(ws.name, ModelSlot())
        t = plan(repo, ws, env, slot, reactivate)
        current = slot.color(slot.active) if slot.active else None
        restored = t.slot.color(t.color)
        assert current is not None
        assert restored is not None
        body = (
            f"{current.release_id} stops serving; it stays deployed in {slot.active} until the "
            "next release replaces it."
        )
        if auto is not None:
            body += (
                f"\n\nAutomatic rollback by mlops guard. {current.release_id} is quarantined in "
                f"{env}: release and promote refuse it until a person removes it from "
                f"quarantined in environments/{env}.yaml."
            )
        message = gitops.format_message(
            f"rollback({env}): {ws.name} back to {restored.release_id} ({t.color})",
            body,
            {
                **trailers(restored, env, t.color),
                "Rollback-Of": current.release_id,
                **(auto.trailers if auto is not None else {}),
            },
        )

        def change() -> str | None:
            fresh = repo.read_state(env).models.get(ws.name, ModelSlot())
            if fresh.active != slot.active:
                return None  # someone else flipped it meanwhile: nothing left to do
            if auto is not None and rules.serving(repo.read_state(env), ws.name) != auto.expect:
                return None  # compare-and-swap: the alert's release no longer serves
            apply_state(repo, ws, cfg, _new_state(repo, ws, env, fresh, reactivate, current, auto))
            return message

        mode = auto.mode if auto is not None else state.rollback
        if mode == "direct":
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
                f"{current.release_id}); committed {sha[:12]}"
                + _close_promotions(ws, repo, current.release_id, env, auto, progress),
                commit=sha,
            )
        branch = scm.request_branch("rollback", env, current.release_id)
        sha = repo.commit(message) if change() is not None else None
        if sha is None:
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
        closing = _close_promotions(ws, repo, current.release_id, env, auto, progress)
    verb = "opened" if pr.created else "updated"
    return RollbackResult(
        restored.release_id,
        current.release_id,
        f"{verb} #{pr.number} ({branch}) to roll {env} back to "
        f"{restored.release_id}; {current.release_id} serves until it is "
        "approved and merged" + closing,
        pr.url,
        sha,
    )


def _close_promotions(
    ws: Workspace,
    repo: gitops.Checkout,
    release_id: str,
    env: str,
    auto: Automatic | None,
    progress: Progress,
) -> str:
    """Close the open promotion requests of the release an automatic rollback took out; the
    words to add to the result. A person's rollback closes nothing: they decide about the
    requests themselves."""
    if auto is None:
        return ""
    provider = scm.provider(repo.cfg, ws.root)
    promotions = [
        pr
        for pr in provider.list_open(base=repo.cfg.branch)
        if (parsed := scm.parse_request_branch(pr.head)) is not None
        and parsed[0] == "promote"
        and parsed[2] == release_id
    ]
    closed, left = close_requests(
        provider,
        repo,
        promotions,
        QUARANTINED,
        f"Closed by mlops guard: {release_id} was rolled back in {env} after an alert and is "
        f"quarantined there. Promote a fixed release instead.",
    )
    for number, why in left:
        progress(f"warning: promotion #{number} of {release_id} is still open, close it: {why}")
    return "".join(
        [
            "; closed its promotion " + ", ".join(f"#{n}" for n in closed) if closed else "",
            *(f"; could not close its promotion #{n}" for n, _ in left),
        ]
    )


def guard_history(repo: gitops.Checkout, env: str, limit: int = 200) -> list[rules.Acted]:
    """The guard's earlier rollbacks in ``env``: the newest ``limit`` commits that changed its
    state, on the GitOps branch and on its open rollback requests' branches (a pr-mode
    rollback is on its branch until merged), that carry an Alert-Fingerprint trailer. Read from
    git, so a restarted guard and a second replica know them as well as the first."""
    out = repo.git(
        "log",
        f"-n{limit}",
        f"--format=%ct%x1f%(trailers:key={rules.FINGERPRINT},valueonly,separator=%x1f)%x1e",
        f"refs/remotes/origin/{repo.cfg.branch}",
        f"--glob=refs/remotes/origin/{scm.request_branch('rollback', env)}*",
        "--",
        str(repo.state_path(env).relative_to(repo.work)),
    )
    acted = []
    for entry in filter(str.strip, out.split("\x1e")):
        stamp, _, fingerprint = entry.strip().partition("\x1f")
        at = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
        found = rules.acted_from({rules.FINGERPRINT: fingerprint.split("\x1f")[0].strip()}, at)
        if found is not None:
            acted.append(found)
    return acted

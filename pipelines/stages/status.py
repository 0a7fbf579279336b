"""status: what runs where, from git; and, given a kube context, whether the cluster agrees.

Git is the record: for each environment, the active and preview releases with their age and
gate verdict, and the promotion or rollback requests that await approval there. When a
Kubernetes context is available (KUBECONFIG, ~/.kube/config, or in a pod), the official client
reads the Deployments and the Service, and any difference from git (image digest, readiness,
selected color) is listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.adapters import gitops, scm
from pipelines.adapters.releasing import now
from pipelines.config import GitOpsConfig, ModelSlot, Workspace, environment_names, load_gitops
from pipelines.core.bluegreen import LiveDeployment, age, compare_live
from pipelines.errors import ConfigError, InfraError


@dataclass
class Row:
    """One model in one environment: releases in git, what the cluster runs, and findings."""

    env: str
    model: str
    active: str
    preview: str
    live: str = "not checked"
    findings: list[str] = field(default_factory=list)
    awaiting: str = "-"
    # The releases the guard (or a person) quarantined in the environment: release and
    # promote refuse them until a commit lifts the quarantine.
    quarantined: list[str] = field(default_factory=list)


@dataclass
class StatusResult:
    """One row per environment and model, and why requests were not listed, if so."""

    rows: list[Row]
    requests_note: str = ""  # why open requests could not be listed, if they could not


def _describe(slot: ModelSlot, color: str | None, stamp: str) -> str:
    record = slot.color(color) if color else None
    if record is None:
        return "-"
    return f"{record.release_id} ({color}, {age(record.released_at, stamp)} ago, {record.gate})"


def _kube() -> tuple[Any, str]:
    """(client module, '') with a usable context, else (None, why not): the same connection
    as the cluster jobs', so a kubeconfig that does not load is named, not taken for "not in a
    cluster"."""
    from pipelines.adapters import kubejobs

    try:
        return kubejobs.connect(), ""
    except ConfigError as exc:  # status still shows git's side; the column says why not live
        return None, f"no kube context: {exc}"


def live_state(
    client: Any, namespace: str, model: str
) -> tuple[dict[str, LiveDeployment], str | None]:
    """The model's Deployments by color, and the color its Service selects."""
    apps, core = client.AppsV1Api(), client.CoreV1Api()
    deployments = {}
    for d in apps.list_namespaced_deployment(namespace, label_selector=f"app={model}").items:
        color = (d.metadata.labels or {}).get("color", "")
        deployments[color] = LiveDeployment(
            color,
            d.spec.template.spec.containers[0].image,
            d.status.ready_replicas or 0,
            d.spec.replicas or 0,
        )
    try:
        service = core.read_namespaced_service(model, namespace)
        selected = (service.spec.selector or {}).get("color")
    except client.exceptions.ApiException:
        selected = None
    return deployments, selected


def open_requests(cfg: GitOpsConfig, ws: Workspace) -> tuple[list[scm.PullRequest], str]:
    """The open requests to the GitOps branch, or why they could not be listed (a missing
    token must not stop `status` from showing what git says)."""
    try:
        found = scm.provider(cfg, ws.root).list_open(base=cfg.branch)
    except (ConfigError, InfraError, scm.ApiError) as exc:
        return [], f"open requests not checked: {exc}"
    return found, ""


def _awaiting(requests: list[scm.PullRequest], env: str) -> str:
    mine = []
    for pr in requests:
        parsed = scm.parse_request_branch(pr.head)
        if parsed is not None and parsed[1] == env:
            mine.append(f"#{pr.number} {parsed[0]} {parsed[2]}")
    return ", ".join(mine) or "-"


def run(ws: Workspace, env: str | None = None, live: bool = True) -> StatusResult:
    """Each environment's releases from git, compared with the cluster when live."""
    cfg = load_gitops(ws.root)
    stamp = now()
    rows: list[Row] = []
    kube, why = _kube() if live else (None, "not asked (--no-live)")
    requests, note = open_requests(cfg, ws)
    with gitops.checkout(cfg, ws.root) as repo:
        names = [env] if env else environment_names(repo.manifests)
        for name in names:
            state = repo.read_state(name)
            for model, slot in sorted(state.models.items()) or [(ws.name, ModelSlot())]:
                row = Row(
                    name,
                    model,
                    _describe(slot, slot.active, stamp),
                    _describe(slot, slot.idle, stamp),
                    why or "",
                    awaiting=_awaiting(requests, name),
                    quarantined=list(state.quarantined),
                )
                if kube is not None:
                    try:
                        deployments, selected = live_state(kube, state.namespace, model)
                        row.findings = compare_live(slot, deployments, selected)
                        row.live = "in sync, ready" if not row.findings else "DIFFERS"
                    except Exception as exc:  # an unreachable cluster is a finding, not a crash
                        row.live = f"unreachable ({type(exc).__name__})"
                rows.append(row)
    return StatusResult(rows, note)

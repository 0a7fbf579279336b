"""The project's own policy on rendered objects, checked before anything is committed.

Every rule reports every violation with the file and the object, so one run lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.core.monitoring import ALERT_ANNOTATIONS, ALERT_LABELS, SEVERITIES
from pipelines.serving.contract import Env
from pipelines.serving.settings import Settings

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
SECRETISH = re.compile(
    r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE
)
NAMESPACED = {
    "ServiceAccount",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Job",
    "Secret",
    "ConfigMap",
    "ResourceQuota",
}
# What a server's shutdown needs after its drain deadline and before the kubelet's SIGKILL:
# uvicorn's lifespan shutdown and the process's exit, and the kubelet's own latency.
SHUTDOWN_MARGIN_SECONDS = 5
# Kubernetes' default when a pod spec does not set terminationGracePeriodSeconds.
DEFAULT_GRACE_SECONDS = 30


@dataclass(frozen=True)
class Violation:
    """A policy rule an object breaks, with the file and object it was found in."""

    file: str
    object: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file} ({self.object}): [{self.rule}] {self.message}"


def _pod_spec(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") in ("Deployment", "Job"):
        spec: dict[str, Any] = obj.get("spec", {}).get("template", {}).get("spec", {})
        return spec
    return None


def _containers(pod: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", []) or []
    yield from pod.get("containers", []) or []


def shutdown_budget(
    grace: int, pre_stop: int, delay: int, drain: int, margin: int = SHUTDOWN_MARGIN_SECONDS
) -> str | None:
    """Why a grace period of ``grace`` s cannot hold a server's shutdown, or None if it can.

    The grace period counts from the start of the preStop hook (``pre_stop`` s); then the
    server keeps serving for ``delay`` (MLOPS_SHUTDOWN_DELAY_SECONDS) and lets requests in
    flight finish for up to ``drain`` (MLOPS_DRAIN_SECONDS). SIGKILL must come at least
    ``margin`` later, or a drain that takes its whole time is killed before it ends."""
    need = pre_stop + delay + drain + margin
    if grace >= need:
        return None
    return (
        f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + "
        f"{Env.SHUTDOWN_DELAY_SECONDS} {delay} + {Env.DRAIN_SECONDS} {drain} + margin "
        f"{margin} = {need}: raise the grace period or shorten the waits"
    )


def _seconds(raw: Any, default: int) -> int | None:
    """Seconds from a rendered field (an int, or an env var's string); None if not a literal
    count."""
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def _check_shutdown(pod: Mapping[str, Any], c: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    # Every Deployment rendered here runs the model server, so unset variables take its defaults.
    env = {e.get("name"): e for e in c.get("env", []) or []}

    def variable(name: str, default: int) -> int | None:
        # Unset: the server's own default. valueFrom: unknown until the pod runs.
        if name not in env:
            return default
        return _seconds(env[name].get("value"), default) if "value" in env[name] else None

    sleep = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    waits = {
        "terminationGracePeriodSeconds": _seconds(
            pod.get("terminationGracePeriodSeconds"), DEFAULT_GRACE_SECONDS
        ),
        "preStop sleep": _seconds(sleep.get("seconds"), 0),
        Env.SHUTDOWN_DELAY_SECONDS.value: variable(
            Env.SHUTDOWN_DELAY_SECONDS, Settings.shutdown_delay
        ),
        Env.DRAIN_SECONDS.value: variable(Env.DRAIN_SECONDS, Settings.drain_seconds),
    }
    name = c.get("name", "?")
    unreadable = [k for k, v in waits.items() if v is None]
    if unreadable:
        yield (
            "shutdown-budget",
            (
                f"container {name}: {', '.join(unreadable)} must be a literal "
                "number of seconds, so that the shutdown budget can be checked"
            ),
        )
        return
    grace, pre_stop, delay, drain = (int(v or 0) for v in waits.values())
    problem = shutdown_budget(grace, pre_stop, delay, drain)
    if problem:
        yield "shutdown-budget", f"container {name}: {problem}"


def _check_pod(kind: str, pod: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    psc = pod.get("securityContext") or {}
    for c in _containers(pod):
        name = c.get("name", "?")
        image = str(c.get("image", ""))
        if not DIGEST.search(image):
            yield "image-by-digest", f"container {name}: image {image!r} is not pinned by digest"
        yield from _check_resources(name, c)
        yield from _check_security(name, psc, c)
        if kind == "Deployment":
            for probe in ("readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    yield "probes", f"container {name}: no {probe}"
        yield from _check_env(name, c)
    if kind == "Deployment":
        for c in pod.get("containers", []) or []:
            yield from _check_shutdown(pod, c)


def _check_resources(name: str, c: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    res = c.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not (res.get(section) or {}).get(resource):
                yield "resources", f"container {name}: no {section}.{resource}"


def _check_security(
    name: str, psc: Mapping[str, Any], c: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    # The container's securityContext, falling back to the pod's where Kubernetes does.
    csc = c.get("securityContext") or {}
    non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    if non_root is not True or uid == 0:
        yield "non-root", f"container {name}: runAsNonRoot must be true (and runAsUser not 0)"
    if csc.get("allowPrivilegeEscalation") is not False:
        yield "non-root", f"container {name}: allowPrivilegeEscalation must be false"
    if csc.get("readOnlyRootFilesystem") is not True:
        yield "read-only-root", f"container {name}: readOnlyRootFilesystem must be true"
    if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
        yield "capabilities", f"container {name}: capabilities.drop must include ALL"


def _check_env(name: str, c: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for env in c.get("env", []) or []:
        if "value" in env and SECRETISH.search(str(env.get("name", ""))):
            yield (
                "no-secrets",
                (
                    f"container {name}: env {env['name']} carries a literal "
                    "value; reference a Secret with valueFrom instead"
                ),
            )


def _alert_rules(obj: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for group in (obj.get("spec") or {}).get("groups") or []:
        yield from (r for r in group.get("rules") or [] if "alert" in r)


def _check_alert(rule: Mapping[str, Any]) -> Iterator[str]:
    """What the guard, Alertmanager's routes and people rely on in every alert: how long it
    must hold and keep firing, its environment and severity, where its runbook is, and an
    action the guard knows."""
    labels, notes = rule.get("labels") or {}, rule.get("annotations") or {}
    yield from (f"no {key!r}" for key in ("for", "keep_firing_for") if not rule.get(key))
    yield from (f"no {label!r} label" for label in ALERT_LABELS if not labels.get(label))
    yield from (f"no {note!r} annotation" for note in ALERT_ANNOTATIONS if not notes.get(note))
    if labels.get("severity", SEVERITIES[0]) not in SEVERITIES:
        yield f"severity {labels['severity']!r} is not one of {', '.join(SEVERITIES)}"
    if labels.get("action", "rollback") != "rollback":
        yield f"action {labels['action']!r}: the only action is 'rollback'"


def _check_monitoring(
    kind: str, obj: Mapping[str, Any], deployments: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[str, str]]:
    if kind == "PrometheusRule":
        for rule in _alert_rules(obj):
            yield from (("alerts", f"alert {rule['alert']}: {m}") for m in _check_alert(rule))
    if kind == "PodMonitor":
        selector = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        if not any(_selects(selector, _template_labels(d)) for d in deployments.values()):
            yield "monitor-selects", f"selector {dict(selector)} matches no Deployment's pods"


def _template_labels(deployment: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (
        deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
    )
    return labels


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _is_guard(obj: Mapping[str, Any]) -> bool:
    """The guard's Deployment runs no model: it has no color or release to label."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get("app.kubernetes.io/component") == "guard")


def check(files: Mapping[str, Mapping[str, Any]]) -> list[Violation]:
    """Policy violations across one environment's rendered objects ({filename: object})."""
    deployments = {f: o for f, o in files.items() if o.get("kind") == "Deployment"}
    jobs = {f: o for f, o in files.items() if o.get("kind") == "Job"}
    out: list[Violation] = []
    for file, obj in sorted(files.items()):
        kind = str(obj.get("kind"))
        ident = f"{kind}/{(obj.get('metadata') or {}).get('name', '?')}"
        out.extend(
            Violation(file, ident, rule, message)
            for rule, message in _check_object(kind, obj, deployments)
        )
        if kind == "Service" and _is_headless(obj):
            out.extend(
                Violation(file, ident, rule, message)
                for rule, message in _check_headless(obj, jobs)
            )
    return out


def _is_headless(service: Mapping[str, Any]) -> bool:
    return bool((service.get("spec") or {}).get("clusterIP") == "None")


def _check_headless(
    service: Mapping[str, Any], jobs: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[str, str]]:
    """A headless Service names the pods of exactly one Indexed Job, whose pods take it as
    their subdomain: that is what makes ``<job>-<i>.<service>`` resolve for TF_CONFIG."""
    selector = (service.get("spec") or {}).get("selector") or {}
    name = (service.get("metadata") or {}).get("name")
    chosen = [
        j
        for j in jobs.values()
        if selector
        and _selects(
            selector,
            j.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {},
        )
    ]
    if len(chosen) != 1:
        names = [j["metadata"]["name"] for j in chosen]
        yield (
            "headless-selects-one-job",
            f"selector {dict(selector)} matches {len(chosen)} Job(s) {names}; exactly one "
            "is required",
        )
        return
    spec = chosen[0].get("spec") or {}
    if spec.get("completionMode") != "Indexed":
        yield "headless-selects-one-job", "the Job it selects is not Indexed"
    if (spec.get("template", {}).get("spec") or {}).get("subdomain") != name:
        yield (
            "headless-selects-one-job",
            f"the pods of the Job it selects do not take {name!r} as their subdomain",
        )


def _check_object(
    kind: str, obj: Mapping[str, Any], deployments: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[str, str]]:
    meta = obj.get("metadata") or {}
    if kind in NAMESPACED and not meta.get("namespace"):
        yield "namespaced", "no metadata.namespace"
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        yield "no-secrets", "Secret values must not be committed; use an external secret store"
    pod = _pod_spec(obj)
    if pod is not None:
        yield from _check_pod(kind, pod)
    if kind == "Deployment" and not _is_guard(obj):
        labels = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
        for label in ("app", "color", "release"):
            if not labels.get(label):
                yield "labels", f"pod template has no {label!r} label"
    yield from _check_monitoring(kind, obj, deployments)
    if kind == "Service" and not _is_headless(obj):
        yield from _check_service(obj, deployments)


def _check_service(
    obj: Mapping[str, Any], deployments: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[str, str]]:
    selector = obj.get("spec", {}).get("selector") or {}
    chosen = [
        (f, d)
        for f, d in deployments.items()
        if _selects(
            selector,
            d.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {},
        )
    ]
    if len(chosen) != 1:
        names = [d["metadata"]["name"] for _, d in chosen]
        yield (
            "service-selects-one",
            f"selector {dict(selector)} matches "
            f"{len(chosen)} Deployment(s) {names}; exactly one is required",
        )
    elif int(chosen[0][1].get("spec", {}).get("replicas", 1)) < 1:
        yield (
            "service-selects-one",
            f"selects {chosen[0][1]['metadata']['name']}, which has no replicas",
        )

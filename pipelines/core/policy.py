"""The project's own policy on rendered objects, checked before anything is committed.

Every rule reports every violation with the file and the object, so one run lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
SECRETISH = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE_?KEY|CREDENTIAL)",
                       re.IGNORECASE)
NAMESPACED = {"ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
              "PodDisruptionBudget", "NetworkPolicy", "Job", "Secret", "ConfigMap"}


@dataclass(frozen=True)
class Violation:
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


def _check_pod(kind: str, pod: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    psc = pod.get("securityContext") or {}
    for c in _containers(pod):
        name = c.get("name", "?")
        image = str(c.get("image", ""))
        if not DIGEST.search(image):
            yield "image-by-digest", f"container {name}: image {image!r} is not pinned by digest"
        res = c.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (res.get(section) or {}).get(resource):
                    yield "resources", f"container {name}: no {section}.{resource}"
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
        if kind == "Deployment":
            for probe in ("readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    yield "probes", f"container {name}: no {probe}"
        for env in c.get("env", []) or []:
            if "value" in env and SECRETISH.search(str(env.get("name", ""))):
                yield "no-secrets", (f"container {name}: env {env['name']} carries a literal "
                                     "value; reference a Secret with valueFrom instead")


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check(files: Mapping[str, Mapping[str, Any]]) -> list[Violation]:
    """Policy violations across one environment's rendered objects ({filename: object})."""
    out: list[Violation] = []
    deployments = {f: o for f, o in files.items() if o.get("kind") == "Deployment"}
    for file, obj in sorted(files.items()):
        kind = str(obj.get("kind"))
        meta = obj.get("metadata") or {}
        ident = f"{kind}/{meta.get('name', '?')}"

        def add(rule: str, message: str, file: str = file, ident: str = ident) -> None:
            out.append(Violation(file, ident, rule, message))

        if kind in NAMESPACED and not meta.get("namespace"):
            add("namespaced", "no metadata.namespace")
        if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
            add("no-secrets", "Secret values must not be committed; use an external secret store")
        pod = _pod_spec(obj)
        if pod is not None:
            for rule, message in _check_pod(kind, pod):
                add(rule, message)
        if kind == "Deployment":
            labels = (obj.get("spec", {}).get("template", {}).get("metadata", {})
                      .get("labels") or {})
            for label in ("app", "color", "release"):
                if not labels.get(label):
                    add("labels", f"pod template has no {label!r} label")
        if kind == "Service":
            selector = obj.get("spec", {}).get("selector") or {}
            chosen = [
                (f, d) for f, d in deployments.items()
                if _selects(selector, d.get("spec", {}).get("template", {}).get("metadata", {})
                            .get("labels") or {})
            ]
            if len(chosen) != 1:
                names = [d["metadata"]["name"] for _, d in chosen]
                add("service-selects-one", f"selector {dict(selector)} matches "
                    f"{len(chosen)} Deployment(s) {names}; exactly one is required")
            elif int(chosen[0][1].get("spec", {}).get("replicas", 1)) < 1:
                add("service-selects-one", f"selects {chosen[0][1]['metadata']['name']}, which "
                    "has no replicas")
    return out

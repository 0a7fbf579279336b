"""Policy rules, one violation at a time, on otherwise valid rendered objects."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from pipelines.core import policy
from tests.unit.core.test_render import rendered


def staging() -> dict[str, dict[str, Any]]:
    return {p: yaml.safe_load(t) for p, t in rendered().files.items()
            if p.startswith("rendered/staging/")}


def rules(files: dict[str, dict[str, Any]]) -> set[str]:
    return {v.rule for v in policy.check(files)}


def test_the_rendered_objects_are_clean() -> None:
    assert policy.check(staging()) == []


def test_a_service_must_select_exactly_one_deployment() -> None:
    files = staging()
    svc = files["rendered/staging/service-digits.yaml"]
    svc["spec"]["selector"] = {"app": "digits"}  # both colors
    violations = policy.check(files)
    assert [v.rule for v in violations] == ["service-selects-one"]
    assert "matches 2 Deployment(s)" in violations[0].message
    svc["spec"]["selector"] = {"app": "digits", "color": "purple"}
    assert rules(files) == {"service-selects-one"}
    svc["spec"]["selector"] = {"app": "digits", "color": "green"}
    files["rendered/staging/deployment-digits-green.yaml"]["spec"]["replicas"] = 0
    assert "has no replicas" in policy.check(files)[0].message


def test_probes_non_root_and_capabilities() -> None:
    files = staging()
    pod = files["rendered/staging/deployment-digits-blue.yaml"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    del c["readinessProbe"]
    pod["securityContext"]["runAsNonRoot"] = False
    del c["securityContext"]["runAsNonRoot"]
    c["securityContext"]["capabilities"]["drop"] = []
    c["securityContext"]["allowPrivilegeEscalation"] = True
    assert rules(files) == {"probes", "non-root", "capabilities"}


def test_secrets_are_never_committed() -> None:
    files = staging()
    files["rendered/staging/secret-x.yaml"] = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "n"},
        "stringData": {"password": "hunter2"}}
    assert rules(files) == {"no-secrets"}


def test_namespaced_objects_need_a_namespace_and_pods_need_labels() -> None:
    files = staging()
    deployment = copy.deepcopy(files["rendered/staging/deployment-digits-blue.yaml"])
    del deployment["metadata"]["namespace"]
    del deployment["spec"]["template"]["metadata"]["labels"]["release"]
    files["rendered/staging/deployment-digits-blue.yaml"] = deployment
    assert rules(files) == {"namespaced", "labels"}

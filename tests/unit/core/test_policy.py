"""Policy rules, one violation at a time, on otherwise valid rendered objects."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from pipelines.core import policy
from tests.unit.core.test_render import rendered


def staging() -> dict[str, dict[str, Any]]:
    return {
        p: yaml.safe_load(t)
        for p, t in rendered().files.items()
        if p.startswith("rendered/staging/")
    }


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
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "x", "namespace": "n"},
        "stringData": {"password": "hunter2"},
    }
    assert rules(files) == {"no-secrets"}


def test_namespaced_objects_need_a_namespace_and_pods_need_labels() -> None:
    files = staging()
    deployment = copy.deepcopy(files["rendered/staging/deployment-digits-blue.yaml"])
    del deployment["metadata"]["namespace"]
    del deployment["spec"]["template"]["metadata"]["labels"]["release"]
    files["rendered/staging/deployment-digits-blue.yaml"] = deployment
    assert rules(files) == {"namespaced", "labels"}


def test_the_shutdown_budget_needs_the_waits_plus_a_margin() -> None:
    margin = policy.SHUTDOWN_MARGIN_SECONDS
    assert policy.shutdown_budget(5 + 5 + 20 + margin, 5, 5, 20) is None
    problem = policy.shutdown_budget(30, 5, 5, 20)
    assert problem is not None
    assert (
        f"30 < preStop 5 + MLOPS_SHUTDOWN_DELAY_SECONDS 5 + MLOPS_DRAIN_SECONDS 20 + "
        f"margin {margin} = {30 + margin}" in problem
    )
    assert policy.shutdown_budget(29, 0, 0, 20, margin=10) is not None
    assert policy.shutdown_budget(30, 0, 0, 20, margin=10) is None


def test_the_default_rendering_leaves_time_to_drain() -> None:
    for env in ("staging", "production"):
        files = {
            p: yaml.safe_load(t)
            for p, t in rendered().files.items()
            if p.startswith(f"rendered/{env}/")
        }
        # The model servers' Deployments (the guard's drains nothing: it answers webhooks).
        deployments = [
            o
            for o in files.values()
            if o["kind"] == "Deployment"
            and o["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "guard"
        ]
        assert deployments
        for d in deployments:
            pod = d["spec"]["template"]["spec"]
            (c,) = pod["containers"]
            env_vars = {
                e["name"]: int(e["value"])
                for e in c["env"]
                if e["name"] in ("MLOPS_SHUTDOWN_DELAY_SECONDS", "MLOPS_DRAIN_SECONDS")
            }
            # The waits are explicit in the rendered Deployment, not left to the server's defaults.
            assert sorted(env_vars) == ["MLOPS_DRAIN_SECONDS", "MLOPS_SHUTDOWN_DELAY_SECONDS"]
            waits = (
                c["lifecycle"]["preStop"]["sleep"]["seconds"]
                + env_vars["MLOPS_SHUTDOWN_DELAY_SECONDS"]
                + env_vars["MLOPS_DRAIN_SECONDS"]
            )
            assert pod["terminationGracePeriodSeconds"] >= waits + policy.SHUTDOWN_MARGIN_SECONDS
        assert "shutdown-budget" not in rules(files)


def test_a_grace_period_too_short_for_the_drain_is_a_violation() -> None:
    files = staging()
    pod = files["rendered/staging/deployment-digits-blue.yaml"]["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = 30
    violations = policy.check(files)
    assert [v.rule for v in violations] == ["shutdown-budget"]
    assert "container server: terminationGracePeriodSeconds 30 <" in violations[0].message
    env = pod["containers"][0]["env"]
    del pod["terminationGracePeriodSeconds"]  # Kubernetes' default, 30
    assert rules(files) == {"shutdown-budget"}
    pod["terminationGracePeriodSeconds"] = 300
    env[:] = [e for e in env if not e["name"].startswith("MLOPS_DRAIN")]
    env.append(
        {
            "name": "MLOPS_DRAIN_SECONDS",
            "valueFrom": {"configMapKeyRef": {"name": "x", "key": "drain"}},
        }
    )
    violations = policy.check(files)
    assert [v.rule for v in violations] == ["shutdown-budget"]
    assert "MLOPS_DRAIN_SECONDS must be a literal number of seconds" in violations[0].message
    env[-1] = {"name": "MLOPS_DRAIN_SECONDS", "value": "290"}
    assert rules(files) == {"shutdown-budget"}
    env[-1]["value"] = "280"
    assert policy.check(files) == []

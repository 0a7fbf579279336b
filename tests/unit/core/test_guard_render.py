"""The guard's rendered objects: only where auto_rollback is on, valid against Kubernetes and
the vendored AlertmanagerConfig CRD (unknown fields are errors), clean under the policy, and
with Secrets referenced, never their values."""

from __future__ import annotations

import pytest
import yaml

from pipelines.adapters import rendering as stage
from pipelines.config import GitOpsConfig, load_gitops
from pipelines.errors import ConfigError
from tests.unit.core.test_render import MODELS, ROOT, TEMPLATES, states

IMAGE = "registry.example/mlops-tools@sha256:" + "ab" * 32


def gitops(image: str = IMAGE) -> GitOpsConfig:
    base = load_gitops(ROOT, env={})
    return base.model_copy(update={"guard": base.guard.model_copy(update={"image": image})})


def render(auto: str, image: str = IMAGE) -> stage.Rendering:
    s = states()
    s["staging"] = s["staging"].model_copy(update={"auto_rollback": auto})
    return stage.render_all(ROOT / "manifests", TEMPLATES, MODELS, gitops(image), s)


def guard_files(r: stage.Rendering) -> dict[str, str]:
    return {p: t for p, t in r.files.items() if "mlops-guard" in p}


def kinds(r: stage.Rendering) -> list[dict[str, str]]:
    project = yaml.safe_load(r.files["controllers/argocd/appproject-mlops.yaml"])
    allowed: list[dict[str, str]] = project["spec"]["namespaceResourceWhitelist"]
    return allowed


ROUTE = {"group": "monitoring.coreos.com", "kind": "AlertmanagerConfig"}


def test_no_guard_where_auto_rollback_is_off() -> None:
    r = render("off")
    assert guard_files(r) == {}
    assert ROUTE not in kinds(r)


@pytest.mark.parametrize("auto", ["pr", "direct"])
def test_the_guard_renders_valid_and_clean_where_auto_rollback_is_on(auto: str) -> None:
    r = render(auto)
    assert r.violations == []
    assert ROUTE in kinds(r)  # Argo CD may sync the route
    assert sorted(guard_files(r)) == [
        "rendered/staging/alertmanagerconfig-mlops-guard.yaml",
        "rendered/staging/deployment-mlops-guard.yaml",
        "rendered/staging/networkpolicy-mlops-guard.yaml",
        "rendered/staging/service-mlops-guard.yaml",
    ]
    assert not any("production" in p for p in guard_files(r))
    route = yaml.safe_load(r.files["rendered/staging/alertmanagerconfig-mlops-guard.yaml"])
    assert {"name": "action", "value": "rollback", "matchType": "="} in route["spec"]["route"][
        "matchers"
    ]
    hook = route["spec"]["receivers"][0]["webhookConfigs"][0]
    assert hook["url"] == "http://mlops-guard.mlops-staging.svc:9095/alerts"
    assert hook["httpConfig"]["authorization"]["credentials"] == {
        "name": "mlops-guard",
        "key": "token",
    }
    policy = yaml.safe_load(r.files["rendered/staging/networkpolicy-mlops-guard.yaml"])
    source = policy["spec"]["ingress"][0]["from"][0]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "alertmanager"}
    deployment = yaml.safe_load(r.files["rendered/staging/deployment-mlops-guard.yaml"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    secrets = {e["name"]: e["valueFrom"] for e in container["env"] if "valueFrom" in e}
    assert set(secrets) == {"MLOPS_GUARD_TOKEN", "MLOPS_GITOPS_TOKEN"}


def test_a_guard_without_an_image_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"sets no guard.image"):
        render("direct", image="")

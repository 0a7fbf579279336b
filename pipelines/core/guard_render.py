"""The guard's objects in an environment's rendering: a Deployment of the tools image, its
Service, a NetworkPolicy admitting only Alertmanager, and the AlertmanagerConfig routing the
environment's action=rollback alerts to it.

Rendered only where ``auto_rollback`` is not ``off``: elsewhere the alerts carry no
action=rollback and a guard would have nothing to do but hold a write credential. Each guard
lives in its environment's namespace, so its Secrets, its route and its NetworkPolicy are
per environment too. Pure, like the rest of rendering.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.config.schema import EnvironmentState, GitOpsConfig
from pipelines.core.render import RenderedObject, RenderError, _one, environment
from pipelines.serving import contract

TEMPLATES = (
    "guard/deployment.yaml.j2",
    "guard/service.yaml.j2",
    "guard/networkpolicy.yaml.j2",
    "guard/alertmanagerconfig.yaml.j2",
)


def guard_objects(
    state: EnvironmentState, gitops: GitOpsConfig, templates: Mapping[str, str]
) -> list[RenderedObject]:
    """The guard's objects for one environment; none where auto_rollback is off."""
    if state.auto_rollback == "off":
        return []
    if not gitops.guard.image:
        raise RenderError(
            f"{state.environment} has auto_rollback {state.auto_rollback}, but "
            "manifests/gitops.yaml sets no guard.image (the tools image, pinned by digest)"
        )
    jenv = environment(templates)
    ctx = {
        "env": {"name": state.environment, "namespace": state.namespace},
        "guard": gitops.guard.model_dump(),
        "uid": contract.UID,
    }
    return [_one(jenv, t, ctx) for t in TEMPLATES]

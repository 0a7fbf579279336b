"""One serving contract: the server's routes and variables, the rendered Deployment and smoke Job,
and the image's Dockerfile all take their paths, uid and names from pipelines/serving/contract.py.

The rendering tests change the contract and check the manifests follow: a value copied into a
template instead of read from ``serving.*`` would stay behind and fail them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from pipelines.adapters.manifests import load_templates
from pipelines.config import EnvironmentState, ModelSlot, NodePool
from pipelines.core import infra_validation, render
from pipelines.serving import contract
from pipelines.serving.app import _route_name, create_app
from pipelines.serving.contract import Env
from pipelines.serving.settings import Settings
from pipelines.stages import package
from tests.unit.core.test_render import MODELS, record

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = load_templates(ROOT / "manifests")


def rendered() -> dict[str, dict[str, Any]]:
    """{kind: object} of one environment with one deployed color."""
    state = EnvironmentState(
        node_pool=NodePool(cpu="4", memory="16Gi", nodes=3),
        environment="staging",
        namespace="mlops-staging",
        models={"digits": ModelSlot(active="blue", blue=record(1))},
    )
    objects = render.environment_objects(state, MODELS, TEMPLATES)
    return {o.kind: o.obj for o in objects}


def altered() -> dict[str, Any]:
    """A contract in which every value differs from the real one."""
    values = contract.template_values()
    return {
        **values,
        "uid": 4242,
        "smoke_module": "other.smoke",
        "health_path": "/alive",
        "ready_path": "/ready",
        "metrics_path": "/prometheus",
        "env": {key: f"X_{name}" for key, name in values["env"].items()},
    }


@pytest.mark.parametrize("values", [contract.template_values(), altered()], ids=["real", "altered"])
def test_the_deployment_and_smoke_job_take_the_contract(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contract, "template_values", lambda: values)
    objects = rendered()
    pod = objects["Deployment"]["spec"]["template"]
    server = pod["spec"]["containers"][0]
    assert server["startupProbe"]["httpGet"]["path"] == values["health_path"]
    assert server["livenessProbe"]["httpGet"]["path"] == values["health_path"]
    assert server["readinessProbe"]["httpGet"]["path"] == values["ready_path"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == values["metrics_path"]
    security = pod["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (values["uid"], values["uid"])
    env = {e["name"]: e["value"] for e in server["env"]}
    names = values["env"]
    # Every variable set is one the server reads, and the port is the one the pod exposes.
    assert set(env) <= set(names.values())
    assert env[names["port"]] == str(server["ports"][0]["containerPort"])
    assert env[names["release_id"]] == "digits-000000000001"
    assert env[names["color"]] == "blue"

    job = objects["Job"]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["python", "-m", values["smoke_module"]]
    security = job["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (values["uid"], values["uid"])


def test_the_contract_the_templates_see_is_the_servers() -> None:
    values = contract.template_values()
    assert values["uid"] == contract.UID
    assert values["port"] == contract.PORT == Settings.port
    assert values["model_dir"] == contract.MODEL_DIR == str(Settings.model_dir)
    assert values["env"]["shutdown_delay_seconds"] == "MLOPS_SHUTDOWN_DELAY_SECONDS"
    assert sorted(values["env"].values()) == sorted(Env)


def test_the_server_serves_exactly_the_contracts_routes(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path)  # no signature.json: the routes use "model"
    app = create_app(settings)
    served = set()
    for route in app.routes:
        assert isinstance(route, Route)
        # Starlette answers HEAD wherever it answers GET.
        for method in (route.methods or set()) - {"HEAD"}:
            served.add((method, route.path))
    versions = ("", *contract.VERSION_SEGMENTS)
    assert served == {r for v in versions for r in contract.routes("model", v).values()}
    for name, (_, path) in contract.routes("model").items():
        assert _route_name(path, "model") == name
    assert _route_name("/v1/models/model/other", "model") == "other"
    # A versioned path is named by the handler its route matched, bounded like the rest.
    handler = next(r.endpoint for r in app.routes if isinstance(r, Route) and r.name == "classify")
    assert _route_name("/v1/models/model/versions/1:classify", "model", handler) == "classify"


def test_the_server_reads_every_contract_variable() -> None:
    """Each setting comes from one contract variable: set them all, and every field changes."""
    env = {
        Env.MODEL_DIR: "/elsewhere",
        Env.HOST: "127.0.0.1",
        Env.PORT: "9000",
        Env.RELEASE_ID: "r1",
        Env.COLOR: "green",
        Env.MAX_BATCH: "7",
        Env.MAX_BODY_BYTES: "4096",
        Env.SHUTDOWN_DELAY_SECONDS: "1",
        Env.DRAIN_SECONDS: "2",
        Env.HEADER_TIMEOUT_SECONDS: "3",
        Env.BODY_TIMEOUT_SECONDS: "4",
        Env.KEEPALIVE_TIMEOUT_SECONDS: "6",
        Env.MAX_CONNECTIONS: "8",
        Env.ACCESS_LOG: "all",
        Env.LOG_LEVEL: "DEBUG",
    }
    assert set(env) == set(Env)
    default, read = Settings(), Settings.from_env({str(k): v for k, v in env.items()})
    unchanged = [
        f.name
        for f in dataclasses.fields(Settings)
        if getattr(read, f.name) == getattr(default, f.name)
    ]
    assert unchanged == []
    assert len(dataclasses.fields(Settings)) == len(Env)


def test_verify_queries_the_contracts_predict_route() -> None:
    cases = infra_validation.malformed_requests("digits", 64, (8, 8), 0.0, 16.0, 4, 4096)
    paths = {c.path for c in cases}
    assert contract.predict_path("digits") in paths
    assert paths <= {contract.predict_path("digits"), contract.predict_path("no-such-model")}


def test_the_dockerfile_takes_the_contract() -> None:
    template = (package.SERVING_DIR / "Dockerfile.j2").read_text(encoding="utf-8")
    # Nothing of the contract is written into the template itself.
    for copied in (str(contract.UID), str(contract.PORT), "MLOPS_", contract.SERVER_MODULE):
        assert copied not in template
    assert not re.search(r"\s/model\b", template)
    text = package.dockerfile().decode()
    assert f"\nUSER {contract.USER}\n" in text
    assert f"\nEXPOSE {contract.PORT}\n" in text
    assert f"COPY model/ {contract.MODEL_DIR}/\n" in text
    assert f"{Env.MODEL_DIR}={contract.MODEL_DIR} \\\n" in text
    assert f"{Env.RELEASE_ID}=${{RELEASE_ID}}\n" in text
    assert f'ENTRYPOINT ["python", "-m", "{contract.SERVER_MODULE}"]\n' in text
    assert "{{" not in text
    assert "{#" not in text

"""The guard's tools image, built and pushed by scripts/tools-image.sh on the real engine and
registry, then run as the guard Deployment runs it: non-root, read-only root filesystem, a
tmpfs on /tmp (the template's emptyDir). Skips without the infrastructure locally; fails in CI
(MLOPS_REQUIRE_INFRA=1)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import ROOT
from tests.util import free_port

pytestmark = pytest.mark.infra

TOKEN = "test-guard-token"  # a fixed test secret, never a real one
# A repository of its own, so the test never moves a tag someone deploys.
REPOSITORY = "mlops-test/tools"
# How the guard Deployment runs it (manifests/templates/guard/deployment.yaml.j2).
HARDENED: dict[str, Any] = {
    "read_only": True,
    "tmpfs": {"/tmp": ""},
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "network_mode": "host",
}


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    """A client of the engine the image is built on, closed afterwards."""
    import docker

    with contextlib.closing(docker.from_env(timeout=120)) as client:
        yield client


@pytest.fixture(scope="module")
def tools_image(infra: str) -> str:
    """The image `make tools-image` builds and pushes, by the digest the script prints."""
    proc = subprocess.run(
        [str(ROOT / "scripts/tools-image.sh")],
        cwd=ROOT,
        env={**os.environ, "BASE_IMAGE": infra, "TOOLS_REPOSITORY": REPOSITORY},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    ref = proc.stdout.strip()
    assert re.fullmatch(rf"[\w.:-]+/{REPOSITORY}@sha256:[0-9a-f]{{64}}", ref), ref
    assert "set guard.image" in proc.stderr
    return ref


def run_once(client: Any, image: str, *command: str, entrypoint: str) -> str:
    """``command`` in a hardened container of ``image``; its output (the container is removed)."""
    out = client.containers.run(
        image, list(command), entrypoint=entrypoint, remove=True, **HARDENED
    )
    return bytes(out).decode()


def test_it_holds_no_tensorflow_and_no_great_expectations(
    docker_client: Any, tools_image: str
) -> None:
    code = (
        "import importlib.util as u; "
        "print(*(m for m in ('tensorflow', 'great_expectations', 'pipelines.stages.guard', "
        "'uvicorn', 'git') if u.find_spec(m) is not None))"
    )
    # Present: the guard, its server and GitPython; absent: TensorFlow and GX.
    found = run_once(docker_client, tools_image, "-c", code, entrypoint="python").split()
    assert found == ["pipelines.stages.guard", "uvicorn", "git"]


def test_it_runs_as_the_templates_uid_not_root(docker_client: Any, tools_image: str) -> None:
    assert run_once(docker_client, tools_image, "-u", entrypoint="id").split() == ["10001"]


def test_git_works_on_a_read_only_root_with_a_tmpfs_on_tmp(
    docker_client: Any, tools_image: str
) -> None:
    script = (
        "git init -q /tmp/r && cd /tmp/r && git config user.email g@example.com "
        "&& git config user.name guard && git commit -q --allow-empty -m probe "
        "&& git log --format=%s && ! touch /src/written 2>/dev/null"
    )
    assert run_once(docker_client, tools_image, "-c", script, entrypoint="sh").strip() == "probe"


@pytest.fixture
def guard(docker_client: Any, tools_image: str) -> Iterator[str]:
    """`mlops guard serve` in the image, hardened; its base URL once /healthz answers."""
    port = free_port()
    container = docker_client.containers.run(
        tools_image,
        ["guard", "serve", "--host", "127.0.0.1", f"--port={port}", "--dry-run"],
        environment={"MLOPS_GUARD_TOKEN": TOKEN},
        detach=True,
        **HARDENED,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a wait for start-up, not a timing assertion
        while True:
            container.reload()
            assert container.status != "exited", container.logs().decode()
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.5)
        yield url
    finally:
        container.remove(force=True)


def test_guard_serve_starts_answers_metrics_and_refuses_an_unauthenticated_webhook(
    guard: str,
) -> None:
    metrics = requests.get(f"{guard}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "mlops_guard_webhooks_total" in metrics.text
    alert = {"version": "4", "status": "firing", "alerts": []}
    assert requests.post(f"{guard}/alerts", json=alert, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (
        requests.post(f"{guard}/alerts", json=alert, headers=wrong, timeout=10).status_code == 401
    )
    # Counted by code: the refusals reached the guard's own handler, not something in front.
    after = requests.get(f"{guard}/metrics", timeout=10).text
    assert re.search(r'mlops_guard_webhooks_total\{code="401"\} 2\.0', after), after

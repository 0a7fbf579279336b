"""The Docker engine, through the Python SDK: build, push, pull and run images.

The engine is whatever ``DOCKER_HOST`` names (the local socket by default). Daemon and registry
hiccups are retried a bounded number of times; then the error says what to do (exit 3).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pipelines.errors import ConfigError, InfraError
from pipelines.serving import contract

T = TypeVar("T")
ATTEMPTS = 3
START_HINT = "start one with `make infra-up` (or Docker Desktop), or point DOCKER_HOST at it"


def engine() -> Any:
    """A Docker client that answered a ping; an infra error says how to start the engine."""
    import docker
    import docker.errors

    client = None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        if client is not None:
            client.close()  # its socket would otherwise be left to the garbage collector
        raise InfraError(f"no docker engine is reachable: {_short(exc)}", hint=START_HINT) from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def retried(
    what: str,
    fn: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    progress: Callable[[str], None] | None = None,
) -> T:
    """Run ``fn``; on a transient engine or network error wait 1 s, 2 s, ... and try again."""
    import docker.errors
    import requests

    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (
            docker.errors.APIError,
            requests.ConnectionError,
            requests.Timeout,
            TransientError,
        ) as exc:
            if attempt == attempts:
                raise InfraError(
                    f"{what} failed {attempts} times; last error: {_short(exc)}",
                    hint="check the engine and the registry (`make infra-status`)",
                ) from None
            if progress:
                progress(f"{what}: {_short(exc)}; retrying in {attempt} s")
            time.sleep(attempt)
    raise AssertionError("unreachable")


class TransientError(Exception):
    """A push or pull the daemon reported as failed, worth trying again."""


def build(
    client: Any,
    context: Path,
    tag: str,
    buildargs: dict[str, str],
    progress: Callable[[str], None],
    *,
    nocache: bool = False,
) -> str:
    """Build with the classic builder and no network: the image ID."""
    log: list[str] = []
    image_id = ""
    for chunk in client.api.build(
        path=str(context),
        tag=tag,
        buildargs=buildargs,
        rm=True,
        forcerm=True,
        pull=False,
        network_mode="none",
        decode=True,
        nocache=nocache,
    ):
        if "error" in chunk:
            tail = "\n".join(f"    {line}" for line in log[-15:])
            raise ConfigError(
                f"the image build failed: {chunk['error'].strip()}\n{tail}",
                hint="a missing wheel means the serving extra and constraints.txt "
                "disagree; a missing base image means `make infra-up` or BASE_IMAGE",
            )
        text = str(chunk.get("stream", "")).rstrip()
        if text:
            log.extend(text.splitlines())
            if text.startswith("Step "):
                progress(f"  {text}")
        aux = chunk.get("aux") or {}
        image_id = aux.get("ID", image_id)
    if not image_id:
        raise InfraError("the engine finished the build without reporting an image ID")
    return str(image_id)


def push(client: Any, repository: str, tag: str) -> str:
    """Push ``repository:tag``; the digest the registry computed."""
    digest = ""
    for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in chunk:
            raise TransientError(chunk["error"])
        aux = chunk.get("aux") or {}
        digest = aux.get("Digest", digest)
    if not digest:
        raise TransientError(f"the push of {repository}:{tag} reported no digest")
    return str(digest)


def pull(client: Any, repository: str, digest: str) -> None:
    """Pull an image by digest; an error in the stream is transient, so the caller may retry."""
    for chunk in client.api.pull(repository, tag=digest, stream=True, decode=True):
        if "error" in chunk:
            raise TransientError(chunk["error"])


@contextlib.contextmanager
def running(
    client: Any, image: str, *, environment: dict[str, str], name_prefix: str
) -> Iterator[Any]:
    """Run ``image`` hardened as production runs it; always removed afterwards.

    Non-root, read-only root filesystem, every capability dropped, no privilege escalation.
    Host networking: it is the one network every engine has (rootless and CI ones included).
    """
    import docker.errors

    name = f"{name_prefix}-{uuid.uuid4().hex[:8]}"
    container = None
    try:
        container = client.containers.run(
            image,
            detach=True,
            name=name,
            environment=environment,
            network_mode="host",
            read_only=True,
            user=contract.USER,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=256,
            mem_limit="1g",
            labels={"io.mlops.purpose": name_prefix},
        )
        yield container
    except docker.errors.ImageNotFound as exc:
        raise InfraError(f"image {image} is not available: {_short(exc)}") from None
    except docker.errors.APIError as exc:
        raise InfraError(f"running {image} failed: {_short(exc)}") from None
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError, docker.errors.NotFound):
                container.remove(force=True)

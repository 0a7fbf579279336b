"""An OCI registry over its HTTP API: digests of pushed manifests, and the model artifact
pushed and pulled with ORAS, so a later gate can fetch production's model by digest.

The registry is ``REGISTRY`` (host[:port][/namespace]), else manifests/gitops.yaml's
``registry``, else 127.0.0.1:5000, the one scripts/infra.sh starts. Loopback registries are
spoken to over plain HTTP, as Docker itself does; any other over HTTPS unless
``REGISTRY_INSECURE=1``. Credentials come from the Docker
config (``docker login``), never from our arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from pipelines.config.loading import find_root, load_gitops
from pipelines.config.settings import DEFAULT_REGISTRY, read_settings
from pipelines.errors import ConfigError, InfraError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
MODEL_ARTIFACT_TYPE = "application/vnd.mlops.model.config.v1+json"
TFLITE_MEDIA_TYPE = "application/vnd.mlops.model.tflite"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def registry_host() -> str:
    """The container registry: REGISTRY when set, else manifests/gitops.yaml's ``registry``
    (what `mlops configure --registry` wrote), else the local one scripts/infra.sh starts."""
    env = read_settings()
    if env.registry_set:
        return env.registry
    try:
        root = find_root()
    except ConfigError:  # outside a checkout there is no gitops.yaml: the local default
        return DEFAULT_REGISTRY
    # The file's own value: REGISTRY, checked above, is the only variable that overrides it.
    return load_gitops(root, env={}).registry or DEFAULT_REGISTRY


def is_insecure(host: str) -> bool:
    """Whether to talk plain HTTP to a registry: when configured, or when it is on loopback."""
    if read_settings().registry_insecure:
        return True
    return host.split(":")[0] in ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Reference:
    """host/repository[:tag][@sha256:digest]"""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> Reference:
        """Parse host[:port]/repository[:tag][@digest]; a usage error if there is no host."""
        name, _, digest = ref.partition("@")
        host, _, rest = name.partition("/")
        if not rest or ("." not in host and ":" not in host and host != "localhost"):
            raise ConfigError(f"{ref!r} does not name a registry host (host[:port]/repository)")
        repository, tag = rest, None
        if ":" in rest.rsplit("/", 1)[-1]:
            repository, _, tag = rest.rpartition(":")
        if digest and not DIGEST_RE.match(digest):
            raise ConfigError(f"{ref!r}: {digest!r} is not a sha256 digest")
        return cls(host, repository, tag, digest or None)

    @property
    def name(self) -> str:
        """The reference without tag or digest."""
        return f"{self.host}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


class Registry:
    """``REGISTRY`` may carry a namespace: ``ghcr.io/acme`` puts ``mlops/digits`` at
    ``ghcr.io/acme/mlops/digits``. Requests go through ORAS's client, which answers the
    registry's bearer-token challenge with the Docker config's credentials (docker login)."""

    def __init__(self, name: str | None = None, timeout: float = 10.0) -> None:
        name = (name or registry_host()).strip("/")
        self.host, _, self.prefix = name.partition("/")
        self.scheme = "http" if is_insecure(self.host) else "https"
        self.timeout = timeout
        self._client: Any = None

    def repository(self, path: str) -> str:
        """The full repository path of ``path`` under this registry's namespace."""
        return f"{self.prefix}/{path}" if self.prefix else path

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}/v2/{path}"

    def _oras(self) -> Any:
        if self._client is None:
            import oras.client

            # ORAS logs every request at INFO; our own progress lines are enough.
            logging.getLogger("oras").setLevel(logging.WARNING)
            self._client = oras.client.OrasClient(
                hostname=self.host, insecure=is_insecure(self.host)
            )
        return self._client

    def _request(self, method: str, repository: str, path: str) -> requests.Response:
        client = self._oras()
        client.auth.load_configs(client.get_container(f"{self.host}/{repository}:x"))
        try:
            response: requests.Response = client.do_request(
                self._url(path), method, headers={"Accept": MANIFEST_TYPES}
            )
        except (requests.RequestException, ValueError) as exc:
            raise InfraError(
                f"registry {self.host}: {method} {path} failed: "
                f"{type(exc).__name__}: {str(exc)[:200]}",
                hint="start it with `make infra-up`, or check REGISTRY and `docker login`",
            ) from None
        return response

    def check(self) -> None:
        """Fail fast (exit 3) when the registry is not there: ORAS's own retries take minutes."""
        try:
            r = requests.get(self._url(""), timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfraError(
                f"registry {self.host} is unreachable: {type(exc).__name__}",
                hint="start it with `make infra-up`, or set REGISTRY",
            ) from None
        if r.status_code not in (200, 401):
            raise InfraError(f"registry {self.host} answered /v2/ with HTTP {r.status_code}")

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The registry's digest of a manifest (tag or digest), or None if it has none."""
        r = self._request("HEAD", repository, f"{repository}/manifests/{reference}")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise InfraError(
                f"registry {self.host}: HEAD manifest {repository}:{reference} "
                f"answered HTTP {r.status_code}",
                hint="check the credentials (`docker login`) and REGISTRY",
            )
        return r.headers.get("Docker-Content-Digest")

    def manifest(self, repository: str, reference: str) -> dict[str, object]:
        """An image manifest by tag or digest; an infra error unless the registry answers 200."""
        r = self._request("GET", repository, f"{repository}/manifests/{reference}")
        if r.status_code != 200:
            raise InfraError(
                f"registry {self.host}: manifest {repository}@{reference} "
                f"answered HTTP {r.status_code}"
            )
        doc: dict[str, object] = r.json()
        return doc

    def push_model(
        self,
        repository: str,
        tag: str,
        files: dict[str, tuple[bytes, str]],
        annotations: dict[str, str],
    ) -> str:
        """Push ``{filename: (bytes, media type)}`` as one OCI artifact; return its digest."""
        self.check()
        client = self._oras()
        with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
            for name, (data, _) in files.items():
                Path(name).write_bytes(data)
            Path("config.json").write_text("{}")
            try:
                response = client.push(
                    target=f"{self.host}/{repository}:{tag}",
                    files=[f"{name}:{media}" for name, (_, media) in files.items()],
                    manifest_config=f"config.json:{MODEL_ARTIFACT_TYPE}",
                    manifest_annotations=annotations,
                    quiet=True,
                )
            except (ValueError, requests.RequestException) as exc:
                raise InfraError(
                    f"pushing the model artifact to {self.host}/{repository} failed: {exc}"
                ) from None
        digest = response.headers.get("Docker-Content-Digest") or self.manifest_digest(
            repository, tag
        )
        if not digest:
            raise InfraError(f"the registry did not report a digest for {repository}:{tag}")
        return str(digest)

    def pull_model(self, ref: str, filename: str, expected_sha256: str | None) -> bytes:
        """One file of a model artifact pinned by digest, checked against its sha256."""
        parsed = Reference.parse(ref)
        if not parsed.digest:
            raise ConfigError(f"{ref} is not pinned by digest; refusing to fetch a moving tag")
        self.check()
        client = self._oras()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                paths = client.pull(target=ref, outdir=tmp)
            except (ValueError, requests.RequestException) as exc:
                raise InfraError(f"pulling {ref} failed: {exc}") from None
            wanted = [Path(p) for p in paths if Path(p).name == filename]
            if not wanted:
                raise InfraError(f"{ref} holds no {filename}")
            data = wanted[0].read_bytes()
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise InfraError(
                f"{ref}: {filename} does not have the recorded sha256 "
                f"{expected_sha256[:12]}…; the registry content was altered"
            )
        return data


def compressed_size(manifest: dict[str, object]) -> int:
    """Bytes a pull transfers: the config and the (compressed) layers of an image manifest."""
    total = 0
    for entry in [manifest.get("config"), *(manifest.get("layers") or [])]:  # type: ignore[misc]
        if isinstance(entry, dict):
            total += int(entry.get("size", 0))
    return total


def login(host: str, username: str, password: str, config_dir: Path | None = None) -> Path:
    """Record credentials for ``host`` in the Docker config (~/.docker/config.json), where
    both the Docker SDK and ORAS look. The file is written 0600 and the secret never printed."""
    import base64
    import json

    from pipelines.adapters.artifacts import write_text

    base = config_dir or read_settings().docker_config_dir
    path = base / "config.json"
    config: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config.setdefault("auths", {})[host] = {"auth": token}
    write_text(path, json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path

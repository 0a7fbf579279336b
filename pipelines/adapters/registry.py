"""An OCI registry over its HTTP API: digests of pushed manifests, and the model artifact
pushed and pulled with ORAS, so a later gate can fetch production's model by digest.

The registry is ``REGISTRY`` (host:port, default 127.0.0.1:5000, the one scripts/infra.sh
starts). Loopback registries are spoken to over plain HTTP, as Docker itself does; any other
over HTTPS unless ``REGISTRY_INSECURE=1``. Credentials come from the Docker config
(``docker login``), never from our arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

from pipelines.errors import ConfigError, InfraError

DEFAULT_REGISTRY = "127.0.0.1:5000"
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
MODEL_ARTIFACT_TYPE = "application/vnd.mlops.model.config.v1+json"
TFLITE_MEDIA_TYPE = "application/vnd.mlops.model.tflite"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def registry_host() -> str:
    return os.environ.get("REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def is_insecure(host: str) -> bool:
    if os.environ.get("REGISTRY_INSECURE") == "1":
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
        return f"{self.host}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def pinned(self, digest: str) -> str:
        return f"{self.name}@{digest}"


class Registry:
    def __init__(self, host: str | None = None, timeout: float = 10.0) -> None:
        self.host = host or registry_host()
        self.scheme = "http" if is_insecure(self.host) else "https"
        self.timeout = timeout

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}/v2/{path}"

    def check(self) -> None:
        """Fail fast (exit 3) when the registry is not there: ORAS's own retries take minutes."""
        try:
            r = requests.get(self._url(""), timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfraError(f"registry {self.host} is unreachable: {type(exc).__name__}",
                             hint="start it with `make infra-up`, or set REGISTRY") from None
        if r.status_code not in (200, 401):
            raise InfraError(f"registry {self.host} answered /v2/ with HTTP {r.status_code}")

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The registry's digest of a manifest (tag or digest), or None if it has none."""
        try:
            r = requests.head(self._url(f"{repository}/manifests/{reference}"),
                              headers={"Accept": MANIFEST_TYPES}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfraError(f"registry {self.host} is unreachable: {type(exc).__name__}",
                             hint="start it with `make infra-up`, or set REGISTRY") from None
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise InfraError(f"registry {self.host}: HEAD manifest {repository}:{reference} "
                             f"answered HTTP {r.status_code}")
        return r.headers.get("Docker-Content-Digest")

    def manifest(self, repository: str, reference: str) -> dict[str, object]:
        r = requests.get(self._url(f"{repository}/manifests/{reference}"),
                         headers={"Accept": MANIFEST_TYPES}, timeout=self.timeout)
        if r.status_code != 200:
            raise InfraError(f"registry {self.host}: manifest {repository}@{reference} "
                             f"answered HTTP {r.status_code}")
        doc: dict[str, object] = r.json()
        return doc

    def _oras(self) -> object:
        import oras.client

        # ORAS logs every request at INFO; our own progress lines are enough.
        logging.getLogger("oras").setLevel(logging.WARNING)
        return oras.client.OrasClient(hostname=self.host, insecure=is_insecure(self.host))

    def push_model(self, repository: str, tag: str, files: dict[str, tuple[bytes, str]],
                   annotations: dict[str, str]) -> str:
        """Push ``{filename: (bytes, media type)}`` as one OCI artifact; return its digest."""
        self.check()
        client = self._oras()
        with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
            for name, (data, _) in files.items():
                Path(name).write_bytes(data)
            Path("config.json").write_text("{}")
            try:
                response = client.push(  # type: ignore[attr-defined]
                    target=f"{self.host}/{repository}:{tag}",
                    files=[f"{name}:{media}" for name, (_, media) in files.items()],
                    manifest_config=f"config.json:{MODEL_ARTIFACT_TYPE}",
                    manifest_annotations=annotations, quiet=True)
            except (ValueError, requests.RequestException) as exc:
                raise InfraError(f"pushing the model artifact to {self.host}/{repository} "
                                 f"failed: {exc}") from None
        digest = response.headers.get("Docker-Content-Digest") or self.manifest_digest(
            repository, tag)
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
                paths = client.pull(target=ref, outdir=tmp)  # type: ignore[attr-defined]
            except (ValueError, requests.RequestException) as exc:
                raise InfraError(f"pulling {ref} failed: {exc}") from None
            wanted = [Path(p) for p in paths if Path(p).name == filename]
            if not wanted:
                raise InfraError(f"{ref} holds no {filename}")
            data = wanted[0].read_bytes()
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise InfraError(f"{ref}: {filename} does not have the recorded sha256 "
                             f"{expected_sha256[:12]}…; the registry content was altered")
        return data


def compressed_size(manifest: dict[str, object]) -> int:
    """Bytes a pull transfers: the config and the (compressed) layers of an image manifest."""
    total = 0
    for entry in [manifest.get("config"), *(manifest.get("layers") or [])]:  # type: ignore[misc]
        if isinstance(entry, dict):
            total += int(entry.get("size", 0))
    return total


"""Helpers shared by tests (and benchmarks) that are no part of the product."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from pipelines.evidence import (
    Blessing,
    Candidate,
    GateProvenance,
    InfraBlessing,
    ModelProvenance,
    PackagedRelease,
    Provenance,
    Rule,
    ValidationSummary,
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int, what: str, start_timeout: float = 20) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on 127.0.0.1:``port`` in a thread, yield its URL,
    and stop it on exit."""
    server = uvicorn.Server(
        # log_config=None: uvicorn's own dictConfig would close every logging handler other
        # tests installed, pytest's captured streams among them.
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# Complete, current evidence records for tests that fake a pipeline run instead of running one
# (the records are strict: a partial one is refused like a stale one).

RULES = [Rule(rule="min_accuracy", passed=True, reason="accuracy 98% >= 90%")]


def provenance(data_md5: str = "d1", **extra: str) -> dict[str, Any]:
    return {
        "git_commit": "0" * 40,
        "git_dirty": False,
        "data_md5": data_md5,
        "params_sha256": "0" * 64,
        "created": "2026-01-01T00:00:00+00:00",
        "mlops_version": "0.0.0",
        **extra,
    }


def validation_summary(data_fingerprint: str, data_md5: str = "d1") -> ValidationSummary:
    return ValidationSummary(
        model="digits",
        success=True,
        evaluated_expectations=604,
        failed_expectations=0,
        failures=[],
        rows={"test": 360},
        data_docs="data_docs/index.html",
        data_fingerprint=data_fingerprint,
        provenance=Provenance(**provenance(data_md5)),
    )


def blessing(model_sha256: str, data_fingerprint: str) -> Blessing:
    return Blessing(
        model="digits",
        blessed=True,
        candidate=Candidate(
            model_sha256=model_sha256,
            accuracy=0.98,
            macro_precision=0.97,
            macro_recall=0.97,
            macro_f1=0.97,
            size_bytes=1000,
            latency_ms={"p50": 0.1, "p99": 0.2},
            per_class_recall={"0": 1.0},
        ),
        baseline=None,
        comparison=None,
        rules=RULES,
        provenance=GateProvenance(**provenance(data_fingerprint=data_fingerprint)),
    )


def packaged_release(release_id: str, image: str, model_sha256: str) -> PackagedRelease:
    return PackagedRelease(
        model="digits",
        release_id=release_id,
        image=image,
        image_tag=f"{image.partition('@')[0]}:{release_id}",
        model_artifact=f"{image.partition('@')[0]}-model@sha256:{'0' * 64}",
        model_sha256=model_sha256,
        data_md5="d1",
        source_commit="0" * 40,
        base_image=f"python@sha256:{'0' * 64}",
        platform="linux/x86_64",
        build_key="0" * 64,
        reused=False,
        size_bytes=None,
        compressed_size_bytes=0,
        packages=0,
        seconds=0.0,
        sbom="sbom.cdx.json",
        sbom_sha256="f" * 64,
        provenance=ModelProvenance(**provenance(model_sha256=model_sha256)),
    )


def infra_blessing(release_id: str, image: str, model_sha256: str) -> InfraBlessing:
    return InfraBlessing(
        model="digits",
        blessed=True,
        release_id=release_id,
        image=image,
        model_sha256=model_sha256,
        latency_ms={"p50": 1.0, "p99": 2.0},
        examples=360,
        malformed_requests=[],
        rules=RULES,
        provenance=Provenance(**provenance()),
    )

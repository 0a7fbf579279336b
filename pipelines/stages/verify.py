"""verify: run the pushed image by digest, as production will, and query it with real requests.

TFX InfraValidator's LOAD_AND_QUERY on the real image: it must become ready in time, predict
every test example exactly as evaluate measured, refuse every malformed request with its 4xx
and keep running, log JSON lines only, run as non-root, and hold exactly the packages its SBOM
lists. The container is removed whatever happens, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
import requests

from pipelines.adapters import images
from pipelines.adapters.artifacts import INFRA_BLESSING, PREDICTIONS, SBOM, invalidate, staged_dir
from pipelines.adapters.datasets import ROW_ID, read_table, request_instances
from pipelines.adapters.registry import Reference, Registry
from pipelines.config import Workspace, read_settings
from pipelines.core import infra_validation, sbom
from pipelines.core.infra_validation import Observations
from pipelines.core.metrics import latency_summary
from pipelines.errors import CheckFailed, ConfigError
from pipelines.evidence import (
    InfraBlessing,
    MalformedRequest,
    Provenance,
    Rule,
    made,
    require_package,
    save,
)
from pipelines.serving import contract
from pipelines.serving.contract import Env
from pipelines.serving.runtime import REGRESSION, same_value

BATCH = 32
LIST_PACKAGES = (
    "import importlib.metadata as m, json, os; print(json.dumps({'uid': os.getuid(), 'packages':"
    " sorted([d.metadata['Name'].lower().replace('_', '-'), d.version] for d in m.distributions()"
    ")}))"
)


@dataclass(frozen=True)
class VerifyResult:
    """Whether the image passed infra validation, the blessing file, and its latency."""

    blessed: bool
    infra_blessing: Path
    p50_ms: float
    p99_ms: float


def engine_host() -> str:
    """Where a host-network container of the engine listens: here, or on a remote engine's
    host (DOCKER_HOST=tcp://docker:2375, as GitLab's docker:dind service sets)."""
    url = urllib.parse.urlparse(read_settings().docker_host)
    return url.hostname if url.scheme in ("tcp", "http", "https") and url.hostname else "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A CI runner cancels with SIGTERM; make it unwind like Ctrl-C so the container goes."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_ready(container: Any, base: str, timeout: float) -> tuple[float | None, str]:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        container.reload()
        if container.status in ("exited", "dead"):
            tail = container.logs(tail=10).decode(errors="replace")
            return None, f"the container exited ({container.attrs['State']['ExitCode']}): {tail}"
        with contextlib.suppress(requests.RequestException):
            if requests.get(base + contract.READY_PATH, timeout=2).status_code == 200:
                return time.monotonic() - start, ""
        time.sleep(0.2)
    reason = ""
    with contextlib.suppress(requests.RequestException):
        reason = requests.get(base + contract.READY_PATH, timeout=2).text
    return None, f"{contract.READY_PATH} did not answer 200 within {timeout:g} s {reason}".strip()


def observe(  # noqa: C901 - one visit to the running image, its checks in order
    ws: Workspace,
    container: Any,
    base: str,
    expected_packages: list[tuple[str, str]],
    progress: Callable[[str], None],
) -> tuple[Observations, dict[str, float]]:
    """Query the running image (readiness, predictions, bad requests, logs): what it did."""
    cfg = ws.model.serving
    obs = Observations(ready_seconds=None, ready_timeout_s=cfg.verify.ready_timeout_s)
    obs.ready_seconds, obs.ready_error = _wait_ready(container, base, cfg.verify.ready_timeout_s)
    if obs.ready_seconds is None:
        return obs, {}
    progress(f"  ready after {obs.ready_seconds:.1f} s; querying the test split")

    test = read_table(ws.split_path("test"), "test split")
    want = pd.read_parquet(ws.artifacts("evaluate") / PREDICTIONS)
    if not np.array_equal(want[ROW_ID].to_numpy(), test[ROW_ID].to_numpy()):
        raise ConfigError(
            "evaluate's predictions do not cover the current test split", hint="re-run the pipeline"
        )
    x = request_instances(ws, test)
    regressor = ws.model.task == REGRESSION
    expected = want["predicted"].to_numpy(dtype=np.float64 if regressor else np.int64).tolist()
    predict = base + contract.predict_path(ws.name)
    session = requests.Session()
    obs.examples = len(x)
    for start in range(0, len(x), BATCH):
        r = session.post(predict, json={"instances": x[start : start + BATCH]}, timeout=10)
        if r.status_code != 200:
            raise CheckFailed(
                f"the image answered a valid request with HTTP {r.status_code}: {r.text[:300]}"
            )
        for offset, p in enumerate(r.json()["predictions"]):
            row = start + offset
            if regressor:  # {"value": number}, within the tolerance /readyz's self-test allows
                got: float = contract.answered_value(p)
                same = same_value(got, expected[row])
            else:
                got = int(p["class"])
                same = got == expected[row]
            if not same:
                obs.mismatches.append((int(test[ROW_ID].iloc[row]), expected[row], got))

    latencies = []
    for i in range(cfg.verify.latency_requests):
        body = {"instances": [x[i % len(x)]]}
        t0 = time.perf_counter()
        session.post(predict, json=body, timeout=10).raise_for_status()
        latencies.append((time.perf_counter() - t0) * 1000)
    latency = latency_summary(np.array(latencies))

    cases = infra_validation.schema_requests(
        ws.name, ws.model.data.feature_schema(), cfg.max_batch, cfg.max_body_bytes
    )
    for case in cases:
        # A fresh connection per case: the server may close one after refusing a huge body.
        r = requests.request(
            case.method,
            f"{base}{case.path}",
            data=case.body,
            timeout=10,
            headers={"Content-Type": "application/json"},
        )
        obs.malformed.append((case.name, case.expect, r.status_code))

    container.reload()
    obs.restarts = int(container.attrs.get("RestartCount", 0))
    with contextlib.suppress(requests.RequestException):
        obs.alive_after = (
            container.status == "running"
            and requests.get(base + contract.HEALTH_PATH, timeout=2).status_code == 200
        )
    result = container.exec_run(["python", "-c", LIST_PACKAGES], user=contract.USER)
    if result.exit_code == 0:
        inside = json.loads(result.output.decode())
        obs.uid = int(inside["uid"])
        installed = {(n, v) for n, v in inside["packages"]}
        listed = set(expected_packages)
        obs.sbom_missing = sorted(f"{n}=={v}" for n, v in installed - listed)
        obs.sbom_extra = sorted(f"{n}=={v}" for n, v in listed - installed)
    # Both streams: a log collector reads stderr too, so it must be JSON as well.
    lines = container.logs(stdout=True, stderr=True).decode(errors="replace").splitlines()
    obs.log_lines = len(lines)
    for line in lines:
        try:
            ok = isinstance(json.loads(line), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            obs.non_json_log_lines.append(line[:200])
    return obs, latency


def run(ws: Workspace, progress: Callable[[str], None] = print) -> VerifyResult:
    """Run the packaged image by digest and infra-validate it; write the infra blessing."""
    final = ws.artifacts("verify")
    invalidate(final)  # an engine or registry error must not leave an earlier infra blessing
    record = require_package(ws)
    image = record.image
    ref = Reference.parse(image)
    if not ref.digest:
        raise ConfigError(f"{image} in the release record is not pinned by digest")
    sbom_doc = json.loads((ws.artifacts("package") / SBOM).read_text(encoding="utf-8"))
    Registry(ref.host).check()
    client = images.engine()
    try:
        progress(f"  pulling {image}")
        images.retried(
            "image pull", lambda: images.pull(client, ref.name, str(ref.digest)), progress=progress
        )
        port = _free_port()
        host = engine_host()
        env: dict[str, str] = {
            Env.PORT: str(port),
            # A remote engine's own network: the container must listen where the engine forwards.
            Env.HOST: "127.0.0.1" if host == "127.0.0.1" else "0.0.0.0",  # noqa: S104
            Env.COLOR: "verify",
            Env.RELEASE_ID: record.release_id,
            Env.MAX_BATCH: str(ws.model.serving.max_batch),
            Env.MAX_BODY_BYTES: str(ws.model.serving.max_body_bytes),
        }
        with (
            _sigterm_as_interrupt(),
            images.running(client, image, environment=env, name_prefix="mlops-verify") as container,
        ):
            obs, latency = observe(
                ws, container, f"http://{host}:{port}", sbom.components(sbom_doc), progress
            )
        verdict = infra_validation.decide(obs)
        with staged_dir(final) as out:
            save(
                out / INFRA_BLESSING,
                InfraBlessing(
                    model=ws.name,
                    blessed=verdict.blessed,
                    release_id=record.release_id,
                    image=image,
                    model_sha256=record.model_sha256,
                    latency_ms=latency,
                    examples=obs.examples,
                    malformed_requests=[
                        MalformedRequest(case=c, expected=w, got=g) for c, w, g in obs.malformed
                    ],
                    rules=[
                        Rule(rule=r.rule, passed=r.passed, reason=r.reason) for r in verdict.rules
                    ],
                    provenance=made(Provenance, ws.root, ws.model.section_hash("serving")),
                ),
            )
        path = final / INFRA_BLESSING
        if not verdict.blessed:
            reasons = "\n".join(f"  - {r.rule}: {r.reason}" for r in verdict.failed)
            raise CheckFailed(
                f"the image failed verification ({len(verdict.failed)} rule(s)):\n{reasons}",
                hint=f"see {path}; the release will not go ahead",
            )
        return VerifyResult(True, path, latency.get("p50", 0.0), latency.get("p99", 0.0))
    finally:
        # The engine's socket; left to the garbage collector, it warns (ResourceWarning).
        client.close()

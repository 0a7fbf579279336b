"""The model server on the real trained digits model: the TF Serving contract, strict input
validation (fuzzed), Prometheus metrics, readiness self-test and graceful shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.testclient import TestClient

from pipelines import evidence
from pipelines.adapters.artifacts import sha256_file
from pipelines.config import load_model
from pipelines.core.infra_validation import malformed_requests
from pipelines.serving.app import create_app
from pipelines.serving.contract import Metric
from pipelines.serving.reference import PROFILE
from pipelines.serving.runtime import MODEL_FILE, SIGNATURE, Signature
from pipelines.serving.settings import Settings
from pipelines.stages.package import signature
from tests.conftest import default_recursion_limit
from tests.util import free_port

MAX_BATCH = 16
MAX_BODY = 64 * 1024


def _model_dir(prepared: Path, out: Path, with_profile: bool) -> Path:
    """The folder the image holds: the model, its signature and (as package ships it) the
    reference profile the signature names."""
    ws = load_model(prepared, "digits")
    artifact = prepared / "artifacts/digits/train/model.tflite"
    shutil.copy(artifact, out / MODEL_FILE)
    profile_sha = ""
    if with_profile:
        shutil.copy(prepared / "artifacts/digits/train" / PROFILE, out / PROFILE)
        profile_sha = sha256_file(out / PROFILE)
    (out / SIGNATURE).write_text(signature(ws, sha256_file(artifact), profile_sha).to_json())
    return out


@pytest.fixture(scope="session")
def model_dir(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_dir(prepared, tmp_path_factory.mktemp("model"), with_profile=True)


def _client(model_dir: Path, **overrides: Any) -> Iterator[TestClient]:
    settings = Settings(
        model_dir=model_dir,
        release="r1",
        color="blue",
        max_batch=MAX_BATCH,
        max_body_bytes=MAX_BODY,
        **overrides,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    yield from _client(model_dir)


@pytest.fixture(scope="module")
def test_rows(prepared: Path) -> tuple[np.ndarray, np.ndarray]:
    test = pd.read_parquet(prepared / "data/digits/test.parquet")
    preds = pd.read_parquet(prepared / "artifacts/digits/evaluate/predictions.parquet")
    return (test[[f"pixel_{i}" for i in range(64)]].to_numpy(), preds["predicted"].to_numpy())


def test_health_readiness_status_and_metadata(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready", "release": "r1"}
    status = client.get("/v1/models/digits").json()["model_version_status"][0]
    assert status == {
        "version": "1",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    meta = client.get("/v1/models/digits/metadata").json()
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    dims = sig["inputs"]["pixels"]["tensor_shape"]["dim"]
    assert [d["size"] for d in dims] == ["-1", "8", "8", "1"]
    assert meta["mlops"]["release"] == "r1"
    assert meta["mlops"]["classes"] == list(range(10))


def test_predictions_equal_evaluate(
    client: TestClient, test_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    x, expected = test_rows
    got: list[int] = []
    for start in range(0, len(x), MAX_BATCH):
        r = client.post(
            "/v1/models/digits:predict", json={"instances": x[start : start + MAX_BATCH].tolist()}
        )
        assert r.status_code == 200
        for p in r.json()["predictions"]:
            assert abs(sum(p["probabilities"]) - 1) < 1e-3
            got.append(p["class"])
    assert got == expected.tolist()
    nested = x[0].reshape(8, 8).tolist()
    r = client.post("/v1/models/digits:predict", json={"instances": [nested]})
    assert r.json()["predictions"][0]["class"] == expected[0]


def test_every_malformed_request_gets_its_4xx(client: TestClient) -> None:
    for case in malformed_requests("digits", 64, (8, 8), 0.0, 16.0, MAX_BATCH, MAX_BODY):
        r = client.request(case.method, case.path, content=case.body)
        assert r.status_code == case.expect, (case.name, r.text)
        error = r.json()["error"]
        assert isinstance(error, str), case.name
        assert error, case.name
    assert client.get("/readyz").status_code == 200


def test_a_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(MAX_BODY // 1000 + 1):
            yield b" " * 1000
        yield b"]}"

    r = client.post("/v1/models/digits:predict", content=chunks())
    assert r.status_code == 413
    assert "exceeds the limit" in r.json()["error"]


def test_metrics_carry_model_release_and_color(
    client: TestClient, test_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    x, _ = test_rows
    client.post("/v1/models/digits:predict", json={"instances": x[:3].tolist()})
    client.post("/v1/models/digits:predict", content=b"{")
    samples = [
        s
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    ]
    ident = {"model": "digits", "release": "r1", "color": "blue"}

    def value(name: str, **labels: str) -> float:
        found = [s.value for s in samples if s.name == name and s.labels == {**ident, **labels}]
        assert found, (name, labels)
        return float(found[0])

    assert value("mlops_requests_total", route="predict", code="200") >= 1
    assert value("mlops_requests_total", route="predict", code="400") >= 1
    assert value("mlops_request_duration_seconds_count", route="predict") >= 2
    assert value("mlops_request_duration_seconds_bucket", route="predict", le="+Inf") >= 2
    assert sum(s.value for s in samples if s.name == "mlops_predictions_total") >= 3
    assert value("mlops_input_instances_total") >= 3
    assert value("mlops_input_feature_sum_total", feature="pixel_36") > 0
    assert value("mlops_model_ready") == 1.0
    # Routes are a bounded set: unknown paths do not create series of their own.
    client.get("/no/such/path/123")
    routes = {
        s.labels.get("route")
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
        if "route" in s.labels
    }
    assert routes <= {"predict", "status", "metadata", "healthz", "readyz", "metrics", "other"}


def _samples(client: TestClient) -> list[Sample]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        s
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    ]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    ident = {"model": "digits", "release": "r1", "color": "blue"}
    found = [s.value for s in samples if s.name == name and s.labels == {**ident, **labels}]
    assert len(found) == 1, (name, labels, found)
    return float(found[0])


def test_the_reference_profile_is_exported_as_gauges(model_dir: Path, prepared: Path) -> None:
    profile = evidence.load(prepared / "artifacts/digits/train" / PROFILE, evidence.Profile)
    for client in _client(model_dir):
        samples = _samples(client)
    assert _value(samples, Metric.REFERENCE_FEATURE_MEAN, feature="pixel_36") == pytest.approx(
        profile.mean[36]
    )
    stddev = [s for s in samples if s.name == Metric.REFERENCE_FEATURE_STDDEV]
    assert len(stddev) == 64
    assert min(s.value for s in stddev) == profile.stddev_floor > 0
    ratios = [s for s in samples if s.name == Metric.REFERENCE_CLASS_RATIO]
    assert {s.labels["class"] for s in ratios} == {str(c) for c in range(10)}
    assert sum(s.value for s in ratios) == pytest.approx(1.0)
    drift = profile.drift
    for statistic, expected in (
        ("feature_effect", drift.feature_effect),
        ("drifted_fraction", drift.drifted_fraction),
        ("prediction_psi", drift.prediction_psi),
    ):
        got = _value(samples, Metric.REFERENCE_DRIFT_THRESHOLD, statistic=statistic)
        assert got == pytest.approx(expected)
    assert _value(samples, Metric.REFERENCE_WINDOW_INSTANCES) == 200
    assert _value(samples, Metric.REFERENCE_ANOMALY_THRESHOLD) == profile.anomaly.threshold
    assert _value(samples, Metric.REFERENCE_ANOMALY_RATE) == 0.01
    # Bounded: a few series per feature and class, whatever the traffic.
    assert len({(s.name, tuple(sorted(s.labels.items()))) for s in samples}) < 400


def test_an_out_of_distribution_instance_is_counted_as_an_anomaly_a_test_instance_is_not(
    model_dir: Path, test_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = test_rows
    # A test-split digit, then a valid but unlike one: every pixel lit, corners included.
    for client in _client(model_dir):
        ok = client.post("/v1/models/digits:predict", json={"instances": [x[0].tolist()]})
        assert ok.status_code == 200
        before = _samples(client)
        odd = client.post("/v1/models/digits:predict", json={"instances": [[16.0] * 64]})
        assert odd.status_code == 200
        after = _samples(client)
    assert _value(before, Metric.ANOMALIES) == 0
    assert _value(before, f"{Metric.ANOMALY_SCORE}_count") == 1
    assert _value(after, Metric.ANOMALIES) == 1
    assert _value(after, f"{Metric.ANOMALY_SCORE}_count") == 2
    eps = _value(after, Metric.REFERENCE_ANOMALY_THRESHOLD)
    # The unlike instance scores past every finite bucket (8 epsilon); the digit within epsilon.
    assert _value(after, f"{Metric.ANOMALY_SCORE}_bucket", le="+Inf") == 2
    assert _value(after, f"{Metric.ANOMALY_SCORE}_bucket", le=repr(8.0 * eps)) == 1
    assert _value(before, f"{Metric.ANOMALY_SCORE}_bucket", le=repr(1.0 * eps)) == 1


def test_a_model_without_a_profile_is_served_without_reference_gauges(
    prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bare = _model_dir(prepared, tmp_path, with_profile=False)
    with caplog.at_level("WARNING", logger="mlops.serving"):
        for client in _client(bare):
            r = client.post("/v1/models/digits:predict", json={"instances": [[0.0] * 64]})
            assert r.status_code == 200
            samples = _samples(client)
    assert "no reference profile" in caplog.text
    names = {s.name for s in samples}
    assert Metric.INSTANCES in names
    assert not {n for n in names if n.startswith(("mlops_reference_", "mlops_anomal"))}


def test_a_profile_that_is_not_the_signed_one_keeps_the_server_unready(
    model_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    (bad / PROFILE).write_text((bad / PROFILE).read_text().replace('"seed": 0', '"seed": 1'))
    for client in _client(bad):
        r = client.get("/readyz")
        assert r.status_code == 503
        assert "reference profile" in r.json()["reason"]


def test_a_failed_self_test_keeps_the_server_unready(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    sig = Signature.from_json((bad / SIGNATURE).read_text())
    wrong = [(c + 1) % 10 for c in sig.self_test_classes]
    (bad / SIGNATURE).write_text(
        Signature(**{**sig.__dict__, "self_test_classes": wrong}).to_json()
    )
    for client in _client(bad):
        r = client.get("/readyz")
        assert r.status_code == 503
        assert "self-test failed" in r.json()["reason"]
        assert client.get("/healthz").status_code == 200
        x = [[0.0] * 64]
        assert client.post("/v1/models/digits:predict", json={"instances": x}).status_code == 503
        # TF Serving reports a load that failed for good as END, with the error.
        status = client.get("/v1/models/digits").json()["model_version_status"][0]
        assert status["state"] == "END"
        assert status["status"]["error_code"] == "FAILED_PRECONDITION"
        assert "self-test failed" in status["status"]["error_message"]


def test_a_missing_model_is_reported_not_crashed(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / MODEL_FILE).write_bytes(b"not a flatbuffer")
    for client in _client(broken):
        r = client.get("/readyz")
        assert r.status_code == 503
        assert "did not load" in r.json()["reason"]
        status = client.get("/v1/models/digits").json()["model_version_status"][0]
        assert status["state"] == "END"
        assert "did not load" in status["status"]["error_message"]
        x = [[0.0] * 64]
        for _ in range(2):
            assert (
                client.post("/v1/models/digits:predict", json={"instances": x}).status_code == 503
            )
        # Visible to the rules: ModelDown reads the ready gauge, ModelErrorRate the 5xx.
        samples = {
            (s.name, s.labels.get("route"), s.labels.get("code")): s.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for s in family.samples
            if s.labels.get("release") == "r1"
        }
        assert samples[(Metric.READY, None, None)] == 0
        assert samples[(Metric.REQUESTS, "predict", "503")] == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=80,
)
near_valid = st.fixed_dictionaries(
    {
        "instances": st.lists(
            st.lists(
                st.one_of(st.floats(), st.integers(-(10**30), 10**30), st.booleans(), st.none()),
                min_size=62,
                max_size=66,
            ),
            min_size=0,
            max_size=MAX_BATCH + 2,
        )
    }
)


FIXTURES_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES_OK)
@given(doc=st.one_of(json_values, near_valid, st.fixed_dictionaries({"instances": json_values})))
def test_fuzz_json_bodies_never_get_a_5xx(client: TestClient, doc: object) -> None:
    body = json.dumps(doc, allow_nan=True).encode()
    r = client.post("/v1/models/digits:predict", content=body)
    assert r.status_code in (200, 400, 413), r.text
    if r.status_code != 200:
        assert r.json()["error"]


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURES_OK)
@given(body=st.binary(max_size=300))
def test_fuzz_raw_bytes_never_get_a_5xx(client: TestClient, body: bytes) -> None:
    r = client.post("/v1/models/digits:predict", content=body)
    assert 400 <= r.status_code < 500 or r.status_code == 200


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES_OK)
@given(
    depth=st.integers(0, 1100),
    open_=st.sampled_from([b"[", b'{"a":', b'[{"a":']),
    where=st.sampled_from(["instance", "cell", "signature_name", "top"]),
)
@example(depth=990, open_=b"[", where="instance")  # answered 500 before
def test_any_nesting_depth_gets_a_4xx(
    client: TestClient, depth: int, open_: bytes, where: str
) -> None:
    close = {b"[": b"]", b'{"a":': b"}", b'[{"a":': b"}]"}[open_]
    deep = open_ * depth + (b"1" if b"{" in open_ else b"") + close * depth
    body = {
        "instance": b'{"instances": [' + deep + b"]}",
        "cell": b'{"instances": [[' + deep + b"," + b"0," * 63 + b"0]]}",
        "signature_name": b'{"instances": [['
        + b"0," * 63
        + b'0]], "signature_name": '
        + deep
        + b"}",
        "top": deep,
    }[where]
    with default_recursion_limit():
        r = client.post("/v1/models/digits:predict", content=body)
    assert 400 <= r.status_code < 500, r.text[:300]
    assert len(r.content) < 500


@dataclass
class Server:
    """A real server process; its log lines go to a file (a pipe could fill and block it)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def requests_by_code(self) -> dict[tuple[str, str], float]:
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(self.url("/metrics"), timeout=5).text
        return {
            (s.labels["route"], s.labels["code"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "mlops_requests_total"
        }


def _wait_ready(srv: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert srv.proc.poll() is None, srv.log.read_text()[-2000:]
        try:
            if requests.get(srv.url("/readyz"), timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.1)


@contextlib.contextmanager
def server(
    model_dir: Path, tmp_path: Path, preexec_fn: Callable[[], None] | None = None, **env: str
) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    full_env = {
        **os.environ,
        "MLOPS_MODEL_DIR": str(model_dir),
        "MLOPS_PORT": str(port),
        "MLOPS_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serving"],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    srv = Server(port, proc, log)
    try:
        _wait_ready(srv)
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _poll(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


BODY = json.dumps({"instances": [[0.0] * 64]}).encode()


def _head(length: int | None = None, extra: bytes = b"") -> bytes:
    framing = (
        b"Transfer-Encoding: chunked\r\n" if length is None else b"Content-Length: %d\r\n" % length
    )
    return (
        b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n" + framing + extra + b"\r\n"
    )


def test_a_client_that_disconnects_mid_body_is_no_server_error(
    model_dir: Path, tmp_path: Path
) -> None:
    """Half a body, then the client goes: counted as 499 (client closed), never as a 500, and no
    error or traceback in the log."""
    with server(model_dir, tmp_path) as srv:
        for framing in ("content-length", "chunked"):
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", srv.port)) as sock:
                    if framing == "chunked":
                        sock.sendall(_head() + b"%x\r\n" % len(BODY) + BODY[:20])
                    else:
                        sock.sendall(_head(len(BODY)) + BODY[: len(BODY) // 2])
                    time.sleep(0.1)
        _poll(lambda: srv.requests_by_code().get(("predict", "499"), 0) == 6)
        assert (
            requests.post(srv.url("/v1/models/digits:predict"), data=BODY, timeout=5).status_code
            == 200
        )
        codes = srv.requests_by_code()
        assert not [key for key in codes if key[1].startswith("5")], codes
        lines = srv.lines()
    assert not [line for line in lines if line["level"] in ("error", "critical")], lines
    assert not [line for line in lines if "Exception" in str(line["msg"])]


def _get(port: int, path: str) -> int:
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code


def test_sigterm_drains_the_request_in_flight(model_dir: Path) -> None:
    """A request whose body is still arriving when SIGTERM comes is answered, then the process
    ends."""
    port = free_port()
    env = {
        **os.environ,
        "MLOPS_MODEL_DIR": str(model_dir),
        "MLOPS_PORT": str(port),
        "MLOPS_HOST": "127.0.0.1",
        "MLOPS_DRAIN_SECONDS": "10",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.serving"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(port, "/readyz") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)
        body = json.dumps({"instances": [[0.0] * 64]}).encode()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None, "the server exited with a request in flight"
        sock.sendall(body[10:])
        response = sock.recv(65536).decode()
        sock.close()
        assert response.startswith("HTTP/1.1 200"), response
        # uvicorn re-raises the signal once drained, as a process killed by SIGTERM should end.
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stdout is not None  # started with stdout=PIPE
    lines = [json.loads(line) for line in proc.stdout.read().splitlines() if line.strip()]
    assert any(line["msg"] == "model ready" for line in lines)
    assert any("Shutting down" in line["msg"] for line in lines)


def test_bad_settings_exit_2_with_a_json_line(model_dir: Path) -> None:
    env = {**os.environ, "MLOPS_MODEL_DIR": str(model_dir), "MLOPS_PORT": "eighty"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.serving"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "MLOPS_PORT='eighty' is not an integer" in json.loads(proc.stdout)["msg"]


# -- slow and idle clients ----------------------------------------------------------------

LIMIT = 6


@pytest.fixture(scope="module")
def guarded(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with one-second read timeouts and room for LIMIT connections."""
    with server(
        model_dir,
        tmp_path_factory.mktemp("guarded"),
        MLOPS_HEADER_TIMEOUT_SECONDS="1",
        MLOPS_BODY_TIMEOUT_SECONDS="1",
        MLOPS_KEEPALIVE_TIMEOUT_SECONDS="1",
        MLOPS_MAX_CONNECTIONS=str(LIMIT),
    ) as srv:
        yield srv


def _read_until_closed(sock: socket.socket, timeout: float = 15) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _connection_timeouts(srv: Server) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(srv.url("/metrics"), timeout=5).text
    return {
        s.labels.get("phase", s.name): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name
        in (
            "mlops_connection_timeouts_total",
            "mlops_connections_refused_total",
            "mlops_request_heads_too_large_total",
            "mlops_accept_errors_total",
        )
    }


def test_a_slowloris_client_is_disconnected_after_the_header_timeout(guarded: Server) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 300 + b"\r\n\r\n"
    before = _connection_timeouts(guarded)["head"]
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sent = 0
        with contextlib.suppress(OSError):  # the server may close while we are still sending
            for byte in head:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)  # the whole head would take 16 s
        assert sent < len(head), "the server waited for the whole dribbled head"
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in answer
    assert _connection_timeouts(guarded)["head"] == before + 1
    assert requests.get(guarded.url("/healthz"), timeout=5).status_code == 200


def test_a_connection_that_sends_nothing_is_closed(guarded: Server) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        assert _read_until_closed(sock) == b""  # no request started: nothing to answer


def test_an_idle_keep_alive_connection_is_closed(guarded: Server) -> None:
    """Closed after the idle timeout, even when the client sends blank lines to look busy
    (uvicorn alone resets its keep-alive timer on any byte)."""
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        # The whole answer: its head and body can arrive in separate reads.
        answer = b""
        while not answer.endswith(b'{"status":"alive"}'):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
        sock.settimeout(0.2)
        closed, said = False, b""
        for _ in range(100):  # 20 s at most
            try:
                sock.sendall(b"\r\n")
                # Whole reads: the blank lines may count as a request head begun, which is
                # answered 408 before the close; reading that byte by byte never reached it.
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
            if chunk == b"":
                closed = True
                break
            said += chunk
        assert closed, "the idle connection was never closed"
        assert said == b"" or said.startswith(b"HTTP/1.1 408 "), said


def test_a_body_that_does_not_arrive_gets_408(guarded: Server) -> None:
    before = guarded.requests_by_code().get(("predict", "408"), 0)
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sock.sendall(_head(len(BODY)) + BODY[:10])
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"body did not arrive" in answer
    _poll(lambda: guarded.requests_by_code().get(("predict", "408"), 0) == before + 1)


def test_a_huge_request_head_gets_431(guarded: Server) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(200):
                sock.sendall(b"X-Big: " + b"b" * 1000 + b"\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer


def test_connections_over_the_limit_are_refused_while_connected_clients_are_served(
    guarded: Server,
) -> None:
    session = requests.Session()  # one keep-alive connection, opened before the limit is hit
    assert session.get(guarded.url("/healthz"), timeout=5).status_code == 200
    refused_before = _connection_timeouts(guarded)["mlops_connections_refused_total"]
    held = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(LIMIT - 1)]
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", guarded.port)) as extra:
                extra.sendall(_head(len(BODY)) + BODY)
                answer = _read_until_closed(extra)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert b"connection: close" in answer
            assert b"retry-after: 1" in answer
            # The client that was already connected is still served, on its connection.
            r = session.post(guarded.url("/v1/models/digits:predict"), data=BODY, timeout=5)
            assert r.status_code == 200
    finally:
        for sock in held:
            sock.close()
    assert _connection_timeouts(guarded)["mlops_connections_refused_total"] == refused_before + 3
    session.close()
    # The refused requests never reached the application: no 503 in its request counts.
    assert not [key for key in guarded.requests_by_code() if key[1] == "503"]
    _poll(lambda: _healthy(guarded))


def _healthy(srv: Server) -> bool:
    try:
        return requests.get(srv.url("/healthz"), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _few_file_descriptors() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_running_out_of_file_descriptors_logs_a_bounded_amount_and_recovers(
    model_dir: Path, tmp_path: Path
) -> None:
    """With 64 descriptors and hundreds of connections, accept() fails with EMFILE thousands of
    times a second; the log stays a few lines, and the server serves again once they go."""
    with server(
        model_dir, tmp_path, preexec_fn=_few_file_descriptors, MLOPS_HEADER_TIMEOUT_SECONDS="2"
    ) as srv:
        start = srv.log.stat().st_size
        flood = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(300)]
        time.sleep(4)  # the metrics cannot be scraped meanwhile: no descriptor is left
        for sock in flood:
            sock.close()
        _poll(lambda: _healthy(srv), 30)
        stats = _connection_timeouts(srv)
        logged = srv.log.stat().st_size - start
        lines = srv.lines()
    assert stats["mlops_accept_errors_total"] > 100, stats  # EMFILE really happened
    accept_lines = [line for line in lines if line["msg"] == "cannot accept connections"]
    assert 1 <= len(accept_lines) <= 3, accept_lines
    assert logged < 20_000, logged
    assert any(
        line["msg"] == "connection limit lowered to fit the open-files limit" for line in lines
    )


# -- draining -----------------------------------------------------------------------------


def _request_on(sock: socket.socket) -> bytes:
    """One predict on an open keep-alive connection: the response, or b"" if the server
    closed the connection instead (the client would retry elsewhere)."""
    try:
        sock.sendall(_head(len(BODY)) + BODY)
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer
    except (ConnectionResetError, BrokenPipeError):
        return b""


def _predict_status(srv: Server) -> int | None:
    try:
        return requests.post(srv.url("/v1/models/digits:predict"), data=BODY, timeout=5).status_code
    except requests.ConnectionError:
        return None  # refused: the listener is closed


def test_draining_never_answers_503_to_a_request_it_could_still_receive(
    model_dir: Path, tmp_path: Path
) -> None:
    """After SIGTERM: /readyz is red at once, but requests on open keep-alive connections and
    on new connections are served (with Connection: close) until the delay is over; then the
    listener closes and idle connections are closed, never answered 503."""
    with server(
        model_dir, tmp_path, MLOPS_SHUTDOWN_DELAY_SECONDS="3", MLOPS_DRAIN_SECONDS="5"
    ) as srv:
        pool = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(6)]
        for sock in pool:
            assert _request_on(sock).startswith(b"HTTP/1.1 200 ")
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert requests.get(srv.url("/readyz"), timeout=5).status_code == 503
        # Already-open keep-alive connections: served, and told to reconnect.
        for sock in pool[:3]:
            answer = _request_on(sock)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            assert b"connection: close" in answer.lower()
        # New connections during the delay: served.
        served_new = [_predict_status(srv) for _ in range(5)]
        assert served_new == [200] * 5, served_new
        # After the delay: each remaining keep-alive connection is served or closed, no 503;
        # new connections are refused by the closed listener, not answered 503.
        _poll(lambda: _predict_status(srv) is None, 15)
        for sock in pool[3:]:
            answer = _request_on(sock)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 200 "), answer
        for sock in pool:
            sock.close()
        assert srv.proc.wait(timeout=15) in (0, -signal.SIGTERM)
    codes = [line.get("status") for line in srv.lines() if line["msg"] == "request"]
    assert 503 in codes  # /readyz, the only route that says the pod is going
    assert not [
        line
        for line in srv.lines()
        if line["msg"] == "request" and line.get("status") == 503 and line.get("path") != "/readyz"
    ]

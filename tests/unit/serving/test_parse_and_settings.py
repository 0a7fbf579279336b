"""The server's pure parts: request validation and settings from the environment."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.infra_validation import malformed_requests
from pipelines.serving.app import parse_examples, parse_instances
from pipelines.serving.jsonbody import BadRequest, decode
from pipelines.serving.runtime import Signature, scale_features
from pipelines.serving.settings import Settings, SettingsError
from pipelines.serving.telemetry import JsonFormatter, native_stderr_as_log

SIG = Signature(
    model="digits",
    feature_names=[f"pixel_{i}" for i in range(64)],
    image_shape=(8, 8),
    low=0.0,
    high=16.0,
    classes=list(range(10)),
)


def test_flat_nested_and_the_models_own_shape_are_the_same_rows() -> None:
    flat = [float(i % 17) for i in range(64)]
    nested = [flat[r * 8 : (r + 1) * 8] for r in range(8)]
    own = [[[v] for v in row] for row in nested]  # 8x8x1, the model's input shape
    for doc in (
        {"instances": [flat, nested, own]},
        {"inputs": [flat, nested, own]},
        {"inputs": {"pixels": [flat, nested, own]}},
    ):
        x = parse_instances(doc, SIG, max_batch=4)
        assert x.shape == (3, 64)
        assert np.array_equal(x[0], x[1])
        assert np.array_equal(x[0], x[2])
        assert x.dtype == np.float64
        assert x[0].tolist() == flat


@pytest.mark.parametrize(
    ("doc", "status", "message"),
    [
        ([1, 2], 400, "JSON object"),
        ({"examples": []}, 400, "unknown field"),
        ({}, 400, 'needs "instances" (row format) or "inputs" (columnar)'),
        ({"instances": [[0] * 64], "inputs": [[0] * 64]}, 400, "not both"),
        ({"inputs": []}, 400, '"inputs" is empty'),
        ({"inputs": {"x": [[0] * 64]}}, 400, 'one input, "pixels"'),
        ({"inputs": {"pixels": [[0] * 63]}}, 400, "instance 0: expected a list of 64 numbers"),
        ({"instances": [[[[0]] * 8] * 7 + [[[0]] * 7 + [[17]]]]}, 400, "pixel_63 = 17"),
        ({"instances": [[[[0, 1]] * 8] * 8]}, 400, "8x8x1 nested lists"),
        ({"instances": "x"}, 400, "must be a list"),
        ({"instances": []}, 400, "is empty"),
        ({"instances": [[0] * 63]}, 400, "instance 0: expected a list of 64 numbers"),
        ({"instances": [[0] * 64, [True] * 64]}, 400, "instance 1"),
        ({"instances": [[0] * 64] * 5}, 413, "exceed the limit of 4"),
        ({"instances": [[17] + [0] * 63]}, 400, "pixel_0 = 17 is outside the valid range [0, 16]"),
        ({"instances": [[0] * 63 + [-0.5]]}, 400, "pixel_63 = -0.5"),
        ({"instances": [[float("inf")] + [0] * 63]}, 400, "pixel_0 is not finite"),
        ({"instances": [[10**400] + [0] * 63]}, 400, "too large"),
        ({"instances": [[0] * 64], "signature_name": "other"}, 400, "serving_default"),
    ],
)
def test_bad_requests_say_what_is_wrong(doc: object, status: int, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_instances(doc, SIG, max_batch=4)
    assert caught.value.status == status
    assert message in caught.value.message


@pytest.mark.parametrize("value", [True, False, None, "3", float("nan"), 16.000001, -1e-9])
def test_one_bad_value_among_valid_rows_is_refused(value: object) -> None:
    """The one-pass check on the common path lets nothing through that the slow path refuses."""
    good = [float(i % 17) for i in range(64)]
    bad = [*good[:10], value, *good[11:]]
    with pytest.raises(BadRequest, match="instance 1"):
        parse_instances({"instances": [good, bad, good]}, SIG, max_batch=4)


def test_malformed_suite_is_refused_by_the_parser() -> None:
    """Every body-level case of verify's suite fails validation with the status it expects.
    (Routing, size limits and JSON syntax are the server's part: see its tests.)"""
    checked = 0
    for case in malformed_requests(
        "digits", 64, (8, 8), 0.0, 16.0, max_batch=4, max_body_bytes=1024
    ):
        if case.method != "POST" or "digits:predict" not in case.path or len(case.body) > 1024:
            continue
        with pytest.raises(BadRequest) as caught:
            parse_instances(decode(case.body), SIG, max_batch=4, body=case.body)
        assert caught.value.status == case.expect, case.name
        checked += 1
    assert checked >= 17


def test_scaling_matches_training() -> None:
    raw = np.array([[0.0] * 32 + [16.0] * 32])
    x = scale_features(raw, 0.0, 16.0, (8, 8))
    assert x.shape == (1, 8, 8, 1)
    assert x.dtype == np.float32
    assert x.min() == 0.0
    assert x.max() == 1.0


def test_signature_round_trips() -> None:
    assert Signature.from_json(SIG.to_json()) == SIG


def test_settings_defaults_and_overrides() -> None:
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env(
        {
            "MLOPS_PORT": "9000",
            "MLOPS_MODEL_DIR": "/m",
            "MLOPS_COLOR": "blue",
            "MLOPS_ACCESS_LOG": "all",
            "MLOPS_MAX_BATCH": "8",
        }
    )
    assert (s.port, s.model_dir, s.color, s.access_log, s.max_batch) == (
        9000,
        Path("/m"),
        "blue",
        "all",
        8,
    )
    s = Settings.from_env(
        {
            "MLOPS_HEADER_TIMEOUT_SECONDS": "2",
            "MLOPS_BODY_TIMEOUT_SECONDS": "3",
            "MLOPS_KEEPALIVE_TIMEOUT_SECONDS": "4",
            "MLOPS_MAX_CONNECTIONS": "5",
        }
    )
    assert (s.header_timeout, s.body_timeout, s.keepalive_timeout, s.max_connections) == (
        2,
        3,
        4,
        5,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_PORT": "http"}, "MLOPS_PORT='http' is not an integer"),
        ({"MLOPS_PORT": "70000"}, "outside [1, 65535]"),
        ({"MLOPS_MAX_BATCH": "0"}, "MLOPS_MAX_BATCH=0"),
        ({"MLOPS_ACCESS_LOG": "yes"}, "use all, errors or none"),
        ({"MLOPS_LOG_LEVEL": "loud"}, "MLOPS_LOG_LEVEL"),
        (
            {"MLOPS_HEADER_TIMEOUT_SECONDS": "0"},
            "MLOPS_HEADER_TIMEOUT_SECONDS=0 is outside [1, 3600]",
        ),
        (
            {"MLOPS_BODY_TIMEOUT_SECONDS": "1.5"},
            "MLOPS_BODY_TIMEOUT_SECONDS='1.5' is not an integer",
        ),
        ({"MLOPS_KEEPALIVE_TIMEOUT_SECONDS": "-1"}, "MLOPS_KEEPALIVE_TIMEOUT_SECONDS=-1"),
        ({"MLOPS_MAX_CONNECTIONS": "0"}, "MLOPS_MAX_CONNECTIONS=0"),
        ({"MLOPS_MAX_CONNECTIONS": "many"}, "MLOPS_MAX_CONNECTIONS='many'"),
        ({"MLOPS_SHUTDOWN_DELAY_SECONDS": "-5"}, "MLOPS_SHUTDOWN_DELAY_SECONDS=-5"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_env(env)


def test_log_lines_are_json_with_fields() -> None:
    record = logging.LogRecord(
        "mlops.serving", logging.INFO, __file__, 1, "request %s", ("x",), None
    )
    record.fields = {"status": 400, "path": '/v1/"quoted"\n'}
    line = JsonFormatter().format(record)
    doc = json.loads(line)
    assert doc["msg"] == "request x"
    assert doc["status"] == 400
    assert doc["path"] == '/v1/"quoted"\n'
    assert "\n" not in line


def test_native_stderr_becomes_json_log_lines(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """What C++ code writes to fd 2 while a model loads is re-logged, and fd 2 is restored."""
    logger = logging.getLogger("mlops.serving.test")
    chatter = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n" + b"x" * 200_000
    with caplog.at_level(logging.INFO, logger="mlops.serving.test"), native_stderr_as_log(logger):
        os.write(2, chatter[:60])
        os.write(2, chatter[60:] + b"\n\n")  # more than a pipe holds: the drain keeps up
    assert [r.getMessage()[:55] for r in caplog.records] == [
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
        "x" * 55,
    ]
    assert caplog.records[0].fields == {"source": "native stderr"}  # type: ignore[attr-defined]
    assert capfd.readouterr().err == ""  # nothing reached the real stderr
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_loop_errors_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE makes CPython's accept loop report thousands of errors a second."""
    import asyncio

    from pipelines.serving.connections import ConnectionStats, RateLimitedLoopErrors

    passed_on: list[str] = []

    class Loop(asyncio.SelectorEventLoop):
        def default_exception_handler(self, context: dict[str, object]) -> None:
            passed_on.append(str(context["message"]))

    stats = ConnectionStats()
    handler = RateLimitedLoopErrors(stats, interval=60)
    loop = Loop()
    try:
        with caplog.at_level(logging.ERROR, logger="mlops.serving"):
            for _ in range(10_000):
                handler(
                    loop,
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(24, "Too many open files"),
                    },
                )
            for _ in range(100):
                handler(loop, {"message": "something else", "exception": ValueError("x")})
    finally:
        loop.close()
    assert stats.accept_errors == 10_000
    assert [r.getMessage() for r in caplog.records if r.name == "mlops.serving"] == [
        "cannot accept connections"
    ]
    assert passed_on == ["something else"]


def _example(values: list[float]) -> dict[str, object]:
    return {f"pixel_{j}": v for j, v in enumerate(values)}


def test_classify_examples_are_rows_in_feature_order_with_the_context_merged() -> None:
    values = [float(j % 17) for j in range(64)]
    example = _example(values)
    as_lists = {k: [v] for k, v in example.items()}  # a tf.Example feature is a list
    context = {"pixel_0": values[0]}
    partial = {k: v for k, v in example.items() if k != "pixel_0"}
    doc = {"examples": [example, as_lists, partial], "context": {}}
    x = parse_examples({"examples": [example, as_lists]}, SIG, max_batch=4)
    assert x.tolist() == [values, values]
    x = parse_examples({"examples": [partial], "context": context}, SIG, max_batch=4)
    assert x.tolist() == [values]
    with pytest.raises(BadRequest, match="missing feature"):
        parse_examples(doc, SIG, max_batch=4)


GOOD = _example([0.0] * 64)


@pytest.mark.parametrize(
    ("doc", "status", "message"),
    [
        ([GOOD], 400, "JSON object"),
        ({"instances": [GOOD]}, 400, 'unknown field(s) "instances"'),
        ({}, 400, '"examples" must be a list'),
        ({"examples": []}, 400, "is empty"),
        ({"examples": [GOOD] * 5}, 413, "exceed the limit of 4"),
        ({"examples": [[0] * 64]}, 400, "example 0: expected an object of features"),
        ({"examples": [{**GOOD, "x": 1}]}, 400, 'example 0: unknown feature(s) "x"'),
        ({"examples": [{k: v for k, v in GOOD.items() if k != "pixel_9"}]}, 400, "pixel_9"),
        ({"examples": [{**GOOD, "pixel_3": "1"}]}, 400, "pixel_3 must be a number"),
        ({"examples": [{**GOOD, "pixel_3": None}]}, 400, "pixel_3 must be a number"),
        ({"examples": [{**GOOD, "pixel_3": True}]}, 400, "pixel_3 must be a number"),
        ({"examples": [{**GOOD, "pixel_3": [1, 2]}]}, 400, "pixel_3 must be a number"),
        ({"examples": [GOOD, {**GOOD, "pixel_5": 17}]}, 400, "example 1: feature pixel_5 = 17"),
        ({"examples": [{**GOOD, "pixel_5": -1e400}]}, 400, "pixel_5 = -Infinity is outside"),
        ({"examples": [GOOD], "context": []}, 400, '"context" must be an object'),
        ({"examples": [GOOD], "context": {"y": 1}}, 400, 'unknown feature(s) "y"'),
        ({"examples": [GOOD], "context": {"pixel_1": 0}}, 400, "also in context"),
        ({"examples": [GOOD], "signature_name": "serving_default"}, 400, "Was: tensorflow/"),
        ({"examples": [GOOD], "signature_name": "nope"}, 400, "not found in signature def"),
        ({"examples": [GOOD], "signature_name": 7}, 400, "must be a string"),
    ],
)
def test_bad_classify_requests_say_what_is_wrong(doc: object, status: int, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_examples(doc, SIG, max_batch=4)
    assert caught.value.status == status
    assert message in caught.value.message

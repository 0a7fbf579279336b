"""The server against TF Serving's REST API, where it claims it.

Each test takes its request and response shapes from TF Serving's REST documentation,
tensorflow/serving docs/api/api_rest.md (g3doc/api_rest.md in older trees), cited by section,
or from TF Serving's own unit tests where the documentation contradicts itself. Where the
server deliberately differs, the README's serving section says so and why (table "request,
TF Serving, ours"); those answers are checked here too.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from pipelines.serving import contract, smoke
from pipelines.serving.app import create_app
from pipelines.serving.runtime import SIGNATURE, Signature
from pipelines.serving.settings import Settings
from tests import regression_model
from tests.integration.test_server import _model_dir, _samples, server

MODEL = "digits"
RELEASE = "digits-0123456789ab"  # a release id is a DNS label: the server's version label
BATCH = 8
# protobuf ships no type stubs (types-protobuf is no dependency): imported as modules.
json_format: Any = importlib.import_module("google.protobuf.json_format")
wrappers_pb2: Any = importlib.import_module("google.protobuf.wrappers_pb2")


@pytest.fixture(scope="module")
def client(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    model_dir = _model_dir(prepared, tmp_path_factory.mktemp("model"), with_profile=True)
    settings = Settings(model_dir=model_dir, release=RELEASE, color="blue", max_batch=BATCH)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def rows(prepared: Path) -> np.ndarray:
    test = pd.read_parquet(prepared / "data/digits/test.parquet")
    return test[[f"pixel_{i}" for i in range(64)]].to_numpy()[:BATCH]


# Every prefix TF Serving accepts for one model: "Including /versions/${VERSION} or
# /labels/${LABEL} is optional" (api_rest.md, "Model status API", "Predict API", ...).
PREFIXES = [
    contract.model_path(MODEL),
    contract.model_path(MODEL, f"/versions/{contract.MODEL_VERSION}"),
    contract.model_path(MODEL, f"/labels/{RELEASE}"),
]


def _error(r: Any, status: int) -> str:
    """api_rest.md, introduction: 'In case of error, all APIs will return a JSON object in the
    response body with error as key and the error message as the value'."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"], body
    assert isinstance(body["error"], str)
    assert body["error"]
    return str(body["error"])


def _serving_apis(module: str) -> Any | None:
    """A module of tensorflow-serving-api, when installed. It requires the full `tensorflow`
    package, and it is no dependency of this project; the shapes below are
    checked against the documented JSON either way, and against its protos when present."""
    try:
        return importlib.import_module(f"tensorflow_serving.apis.{module}")
    except ImportError:
        return None


def _int64(value: Any) -> int:
    """protobuf's JSON mapping writes int64 as a string of digits; parse it as protobuf does."""
    assert isinstance(value, str), value
    parsed = json_format.Parse(f'"{value}"', wrappers_pb2.Int64Value())
    return int(parsed.value)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_model_status_has_the_documented_shape(client: TestClient, prefix: str) -> None:
    """api_rest.md, "Example": `curl .../v1/models/saved_model_half_plus_three` answers
    {"model_version_status": [{"version": "123", "state": "AVAILABLE", "status":
    {"error_code": "OK", "error_message": ""}}]} (a JSON GetModelStatusResponse)."""
    r = client.get(prefix)
    assert r.status_code == 200
    doc = r.json()
    assert doc == {
        "model_version_status": [
            {
                "version": str(contract.MODEL_VERSION),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert _int64(doc["model_version_status"][0]["version"]) == contract.MODEL_VERSION
    status_pb2 = _serving_apis("get_model_status_pb2")
    if status_pb2 is not None:  # strict: an unknown field or a wrong type raises
        parsed = json_format.ParseDict(doc, status_pb2.GetModelStatusResponse())
        assert parsed.model_version_status[0].version == contract.MODEL_VERSION


@pytest.mark.parametrize("prefix", PREFIXES)
def test_model_metadata_is_a_signature_def_map(client: TestClient, prefix: str) -> None:
    """api_rest.md, "Model Metadata API": a JSON GetModelMetadataResponse. TF Serving writes
    its one metadata entry, "signature_def", as the JSON of a SignatureDefMap, so the map sits
    under signature_def.signature_def; each value is a tensorflow.SignatureDef."""
    r = client.get(prefix + "/metadata")
    assert r.status_code == 200
    doc = r.json()
    assert doc["model_spec"] == {
        "name": MODEL,
        "signature_name": "",
        "version": str(contract.MODEL_VERSION),
    }
    assert list(doc["metadata"]) == ["signature_def"]
    signatures = doc["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", contract.CLASSIFY_SIGNATURE}
    meta_graph_pb2 = importlib.import_module("tensorflow.core.protobuf.meta_graph_pb2")
    for name, signature in signatures.items():
        parsed = json_format.ParseDict(signature, meta_graph_pb2.SignatureDef())
        assert parsed.method_name == signature["method_name"], name
    predict = json_format.ParseDict(signatures["serving_default"], meta_graph_pb2.SignatureDef())
    assert predict.method_name == "tensorflow/serving/predict"
    assert [d.size for d in predict.inputs["pixels"].tensor_shape.dim] == [-1, 8, 8, 1]
    assert set(predict.outputs) == {"class", "probabilities"}
    metadata_pb2 = _serving_apis("get_model_metadata_pb2")
    model_pb2 = _serving_apis("model_pb2")
    if metadata_pb2 is not None and model_pb2 is not None:
        json_format.ParseDict(doc["model_spec"], model_pb2.ModelSpec())
        json_format.ParseDict(doc["metadata"]["signature_def"], metadata_pb2.SignatureDefMap())
    # Ours, beside TF Serving's: the release, which an int64 version cannot carry.
    assert doc["mlops"]["release"] == RELEASE


@pytest.mark.parametrize("route", ["", "/metadata", ":predict", ":classify", ":regress"])
def test_another_version_is_not_found_and_another_label_unrecognized(
    client: TestClient, route: str
) -> None:
    """TF Serving's handler answers a version it has not loaded with NOT_FOUND ("Servable not
    found for request: Specific(name, 2)", HTTP 404) and a label it does not know with
    INVALID_ARGUMENT ("Unrecognized servable version label: x", HTTP 400; its
    http_rest_api_handler_test checks that message)."""
    method = client.get if route in ("", "/metadata") else client.post
    kwargs: dict[str, Any] = {} if method == client.get else {"json": {"instances": [[0] * 64]}}
    r = method(contract.model_path(MODEL, "/versions/2") + route, **kwargs)
    assert _error(r, 404) == f"Servable not found for request: Specific({MODEL}, 2)"
    r = method(contract.model_path(MODEL, "/labels/canary") + route, **kwargs)
    assert _error(r, 400) == "Unrecognized servable version label: canary"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_predict_row_format(client: TestClient, rows: np.ndarray, prefix: str) -> None:
    """api_rest.md, "Specifying input tensors in row format": with one named input, each
    instance is the input's value, in its natural nested form ("List of 2 tensors each of
    [1, 2] shape": [ [[1, 2]], [[3, 4]] ]); "Response format": with several named outputs,
    "predictions" is a list of objects, one per instance."""
    flat = rows.tolist()
    own = rows.reshape(-1, 8, 8, 1).tolist()  # the model's input shape, [-1, 8, 8, 1]
    a = client.post(prefix + ":predict", json={"instances": flat})
    b = client.post(prefix + ":predict", json={"instances": own})
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    predictions = a.json()["predictions"]
    assert len(predictions) == len(flat)
    assert all(set(p) == {"class", "probabilities"} for p in predictions)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_predict_columnar_format_answers_outputs(
    client: TestClient, rows: np.ndarray, prefix: str
) -> None:
    """api_rest.md, "Specifying input tensors in column format": "inputs" is a single input
    tensor or a map of input name to tensor; "Response format": a columnar request is answered
    with "outputs", an object keyed by output name when there are several."""
    rowwise = client.post(prefix + ":predict", json={"instances": rows.tolist()}).json()
    expected = {
        "class": [p["class"] for p in rowwise["predictions"]],
        "probabilities": [p["probabilities"] for p in rowwise["predictions"]],
    }
    for inputs in (rows.tolist(), {"pixels": rows.reshape(-1, 8, 8, 1).tolist()}):
        r = client.post(prefix + ":predict", json={"inputs": inputs})
        assert r.status_code == 200, r.text
        assert r.json() == {"outputs": expected}


def test_predict_refuses_instances_and_inputs_together(client: TestClient) -> None:
    """api_rest.md, "Request format": 'A request can have either of them but NOT both'."""
    body = {"instances": [[0] * 64], "inputs": [[0] * 64]}
    assert "not both" in _error(client.post(contract.predict_path(MODEL), json=body), 400)


def _examples(rows: np.ndarray) -> list[dict[str, float]]:
    return [{f"pixel_{j}": float(v) for j, v in enumerate(row)} for row in rows]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_classify_answers_label_score_pairs(
    client: TestClient, rows: np.ndarray, prefix: str
) -> None:
    """api_rest.md, "Classify and Regress API": {"examples": [{feature: value}, ...]} in; out,
    per example, a list of [label, score] pairs with string labels. The section's text names
    the key "result", but its own example and TF Serving's json_tensor_test
    (JsonFromClassificationResult) write "results": the server follows the implementation."""
    r = client.post(prefix + ":classify", json={"examples": _examples(rows)})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    predictions = client.post(prefix + ":predict", json={"instances": rows.tolist()}).json()
    assert len(results) == len(rows)
    for pairs, prediction in zip(results, predictions["predictions"], strict=True):
        assert [label for label, _ in pairs] == [str(c) for c in range(10)]
        scores = [score for _, score in pairs]
        assert scores == pytest.approx(prediction["probabilities"])
        assert int(pairs[int(np.argmax(scores))][0]) == prediction["class"]


def test_classify_context_holds_features_shared_by_all_examples(
    client: TestClient, rows: np.ndarray
) -> None:
    """api_rest.md, "Classify and Regress API", request format: "context" is 'Common context
    shared by all examples. Features that appear here MUST NOT appear in examples'."""
    examples = _examples(rows)
    shared = {"pixel_0": examples[0]["pixel_0"]}
    for example in examples:
        example["pixel_0"] = shared["pixel_0"]
    full = client.post(contract.classify_path(MODEL), json={"examples": examples}).json()
    partial = [{k: v for k, v in e.items() if k != "pixel_0"} for e in examples]
    r = client.post(contract.classify_path(MODEL), json={"examples": partial, "context": shared})
    assert r.json() == full
    both = {"examples": examples, "context": shared}
    assert "also in context" in _error(client.post(contract.classify_path(MODEL), json=both), 400)


def test_regress_is_refused_for_a_classifier(client: TestClient) -> None:
    """api_rest.md, "Example": regress runs on a regression signature; this model has none.
    TF Serving's Regress on a signature of another method fails INVALID_ARGUMENT (HTTP 400)
    with "Expected regression signature method_name to be tensorflow/serving/regress"."""
    body: dict[str, Any] = {"examples": [{"x": 1.0}]}
    message = _error(client.post(contract.regress_path(MODEL), json=body), 400)
    assert message == (
        "Expected regression signature method_name to be tensorflow/serving/regress. "
        "Was: tensorflow/serving/predict"
    )
    body = {"signature_name": contract.CLASSIFY_SIGNATURE, "examples": [{"x": 1.0}]}
    assert "Was: tensorflow/serving/classify" in _error(
        client.post(contract.regress_path(MODEL), json=body), 400
    )
    assert "signature_name" not in _error(
        client.post(contract.regress_path(MODEL), content=b"{"), 400
    )


@pytest.mark.parametrize(
    "path",
    [
        contract.model_path(MODEL) + "/",
        contract.metadata_path(MODEL) + "/",
        contract.predict_path(MODEL) + "/",
        contract.model_path(MODEL, "/versions/1") + "/",
        contract.HEALTH_PATH + "/",
    ],
)
def test_a_trailing_slash_is_no_redirect(client: TestClient, path: str) -> None:
    """TF Serving matches its routes whole and never redirects: a trailing slash is another
    path. Ours answers 404 with the documented error body, not a 307 to follow."""
    method = client.post if ":" in path else client.get
    r = method(path, follow_redirects=False)
    _error(r, 404)


def test_unknown_model_gets_the_documented_error_shape(client: TestClient) -> None:
    """api_rest.md, "Example": `POST /v1/models/half:predict` answers HTTP 404 with
    { "error": "Servable not found for request: Latest(half)" }."""
    _error(client.post(contract.predict_path("half"), json={"instances": [1.0, 5.0]}), 404)


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (":predict", b'{"inputs": [[0, 0]]}'),
        (":predict", b'{"inputs": {"pixels": [[true]]}}'),
        (":predict", b'{"inputs": [' + b"[1e999" + b", 0" * 63 + b"]]}"),
        (":classify", b'{"examples": [{"pixel_0": 1}]}'),
        (":classify", b'{"examples": [], "examples": []}'),
        (":classify", b"[1, 2]"),
        (":regress", b"{"),
    ],
)
def test_new_routes_validate_input_like_predict(
    client: TestClient, route: str, body: bytes
) -> None:
    """Every route refuses bad input with a 4xx and the documented error body."""
    for prefix in PREFIXES:
        _error(client.post(prefix + route, content=body), 400)
    too_big = {"examples": [{f"pixel_{j}": 0 for j in range(64)}] * (BATCH + 1)}
    _error(client.post(contract.classify_path(MODEL), json=too_big), 413)


def test_every_route_counts_its_instances_the_same_way(
    client: TestClient, rows: np.ndarray
) -> None:
    """Telemetry does not depend on the format or the route: a classify or columnar request
    adds its instances to the input and prediction counters as predict does, and a versioned
    path is labelled with its route's name."""
    before = _samples(client)
    requests: list[tuple[str, dict[str, Any]]] = [
        (contract.predict_path(MODEL, "/versions/1"), {"instances": rows[:2].tolist()}),
        (contract.predict_path(MODEL), {"inputs": rows[:3].tolist()}),
        (contract.classify_path(MODEL, f"/labels/{RELEASE}"), {"examples": _examples(rows[:4])}),
    ]
    for path, body in requests:
        assert client.post(path, json=body).status_code == 200
    after = _samples(client)

    def delta(name: str, **labels: str) -> float:
        return _delta(before, after, name, **labels)

    assert delta("mlops_input_instances_total") == 9
    assert delta("mlops_input_feature_sum_total", feature="pixel_36") == pytest.approx(
        rows[:2, 36].sum() + rows[:3, 36].sum() + rows[:4, 36].sum()
    )
    predictions = sum(s.value for s in after if s.name == "mlops_predictions_total") - sum(
        s.value for s in before if s.name == "mlops_predictions_total"
    )
    assert predictions == 9
    assert delta("mlops_requests_total", route="predict", code="200") == 2
    assert delta("mlops_requests_total", route="classify", code="200") == 1


def _delta(before: list[Any], after: list[Any], name: str, **labels: str) -> float:
    """How much a series of this server grew; a series not exported yet counts as 0."""
    ident = {"model": MODEL, "release": RELEASE, "color": "blue", **labels}

    def value(samples: list[Any]) -> float:
        return sum(float(s.value) for s in samples if s.name == name and s.labels == ident)

    return value(after) - value(before)


def test_the_smoke_job_finds_the_release_beside_the_int64_version(
    prepared: Path, tmp_path: Path
) -> None:
    """The post-deployment smoke test reads the release from /readyz (the status carries TF
    Serving's version "1"): it passes for the release served, and names the one served when
    another was expected."""
    model_dir = _model_dir(prepared, tmp_path, with_profile=True)
    sig = Signature.from_json((model_dir / SIGNATURE).read_text())
    with server(model_dir, tmp_path, MLOPS_RELEASE_ID=RELEASE) as srv:
        base = srv.url("")
        assert smoke.check(base, MODEL, RELEASE, sig) == ""
        problem = smoke.check(base, MODEL, "digits-ffffffffffff", sig)
        assert problem == (
            f"the Service answers for release {RELEASE} (AVAILABLE), not digits-ffffffffffff"
        )


# --- A regressor: TF Serving's own example model, half_plus_three (api_rest.md, "Example") ---

HALF = "half_plus_three"
HALF_PREFIXES = [
    contract.model_path(HALF),
    contract.model_path(HALF, f"/versions/{contract.MODEL_VERSION}"),
    contract.model_path(HALF, f"/labels/{RELEASE}"),
]


@pytest.fixture(scope="module")
def half_plus_three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """y = x / 2 + 3 over one named feature x in [0, 10] (tests/regression_model.py)."""
    rows: list[list[Any]] = [[float(x)] for x in np.linspace(0.0, 10.0, 41)]
    model_dir = regression_model.write_model_dir(
        tmp_path_factory.mktemp("half"),
        HALF,
        regression_model.half_plus_three(),
        regression_model.HALF_PLUS_THREE,
        rows,
    )
    settings = Settings(model_dir=model_dir, release=RELEASE, color="blue", max_batch=BATCH)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("prefix", HALF_PREFIXES)
def test_regress_answers_the_documented_example(half_plus_three: TestClient, prefix: str) -> None:
    """api_rest.md, "Example": `curl -d '{"signature_name": "tensorflow/serving/regress",
    "examples": [{"x": 1.0}, {"x": 2.0}]}' .../half_plus_three:regress` answers
    {"results": [3.5, 4.0]}; "Response format": one value per example, in order (the text
    says "result"; the example and json_tensor_test's JsonFromRegressionResult write
    "results")."""
    body = {"signature_name": contract.REGRESS_SIGNATURE, "examples": [{"x": 1.0}, {"x": 2.0}]}
    r = half_plus_three.post(prefix + ":regress", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"results": [3.5, 4.0]}
    # Ours needs no signature_name: :regress runs the regression signature, as :classify runs
    # the classification one (README, "request, TF Serving, ours").
    unnamed = half_plus_three.post(prefix + ":regress", json={"examples": body["examples"]})
    assert unnamed.json() == r.json()


def test_predict_of_the_documented_example_names_its_one_output(
    half_plus_three: TestClient,
) -> None:
    """api_rest.md, "Example": `{"instances": [1.0, 2.0, 5.0]}` -> {"predictions": [3.5, 4.0,
    5.5]}: with one output TF Serving leaves its name out ("Response format"). Ours answers
    the same values as {"value": v} objects (row) and {"value": [...]} (columnar), so that a
    client reads a regressor's and a classifier's answers by name alike; and an instance of
    named features is a row (or an object), not a bare scalar (README)."""
    r = half_plus_three.post(contract.predict_path(HALF), json={"instances": [[1.0], [2.0], [5.0]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [{"value": 3.5}, {"value": 4.0}, {"value": 5.5}]}
    columnar = half_plus_three.post(
        contract.predict_path(HALF), json={"inputs": {"x": [1.0, 2.0, 5.0]}}
    )
    assert columnar.json() == {"outputs": {"value": [3.5, 4.0, 5.5]}}
    bare = half_plus_three.post(contract.predict_path(HALF), json={"instances": [1.0, 2.0]})
    assert "expected a row" in _error(bare, 400)


def test_a_regressors_metadata_is_a_signature_def_map(half_plus_three: TestClient) -> None:
    """The regression signature as TensorFlow's signature_def_utils builds one: method
    tensorflow/serving/regress, input "inputs" (serialized tf.Examples), output "outputs"."""
    doc = half_plus_three.get(contract.metadata_path(HALF)).json()
    signatures = doc["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", contract.REGRESS_SIGNATURE}
    meta_graph_pb2 = importlib.import_module("tensorflow.core.protobuf.meta_graph_pb2")
    regress = json_format.ParseDict(
        signatures[contract.REGRESS_SIGNATURE], meta_graph_pb2.SignatureDef()
    )
    assert regress.method_name == "tensorflow/serving/regress"
    assert (set(regress.inputs), set(regress.outputs)) == ({"inputs"}, {"outputs"})
    metadata_pb2 = _serving_apis("get_model_metadata_pb2")
    if metadata_pb2 is not None:
        json_format.ParseDict(doc["metadata"]["signature_def"], metadata_pb2.SignatureDefMap())


def test_classify_is_refused_for_a_regressor(half_plus_three: TestClient) -> None:
    """The mirror of test_regress_is_refused_for_a_classifier: without signature_name TF
    Serving runs serving_default, a predict signature, and fails INVALID_ARGUMENT."""
    body: dict[str, Any] = {"examples": [{"x": 1.0}]}
    assert _error(half_plus_three.post(contract.classify_path(HALF), json=body), 400) == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )

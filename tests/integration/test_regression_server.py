"""The model server on a real regressor, made without the pipeline (tests/regression_model.py):
a Dense network with one linear output over the churn table's named features. Its answers
({"value"} per instance, :regress's results), :classify refused as TF Serving refuses it,
its metadata, the self-test within its tolerance, the output width checked at load, and
predictions counted by bin of the predicted value."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from pipelines.serving import contract, smoke
from pipelines.serving.app import create_app
from pipelines.serving.features import TableSchema
from pipelines.serving.reference import PROFILE, prediction_bins
from pipelines.serving.runtime import SIGNATURE, Signature
from pipelines.serving.settings import Settings
from tests import regression_model, table_model
from tests.integration.test_server import server

NAME = "spend"
RELEASE = "spend-0123456789ab"
MAX_BATCH = 32
SCHEMA = TableSchema.from_list(table_model.FEATURES)
ROWS: list[list[Any]] = [
    [None if v != v else v for v in row]  # JSON's null for the table's NaN
    for row in table_model.table(200).loc[:, SCHEMA.names].astype(object).to_numpy().tolist()
]


@pytest.fixture(scope="module")
def model() -> bytes:
    return regression_model.dense_regressor(SCHEMA.width)


@pytest.fixture(scope="module")
def model_dir(model: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return regression_model.write_model_dir(
        tmp_path_factory.mktemp("regressor"), NAME, model, table_model.FEATURES, ROWS
    )


def _client(model_dir: Path) -> Iterator[TestClient]:
    settings = Settings(model_dir=model_dir, release=RELEASE, color="blue", max_batch=MAX_BATCH)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    yield from _client(model_dir)


def _error(r: Any, status: int) -> str:
    """TF Serving's error shape: {"error": "<message>"} and nothing else."""
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"], body
    return str(body["error"])


def _objects(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(SCHEMA.names, row, strict=True)) for row in rows]


def test_it_is_ready_and_answers_a_value_per_instance(client: TestClient, model: bytes) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "release": RELEASE}
    rows = ROWS[:MAX_BATCH]
    want = regression_model.predicted(model, SCHEMA, rows)
    r = client.post(contract.predict_path(NAME), json={"instances": rows})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert all(list(p) == ["value"] and isinstance(p["value"], float) for p in predictions)
    # float32 values, sent as their shortest decimal: equal to LiteRT's to float32 precision.
    assert [p["value"] for p in predictions] == pytest.approx(want, rel=1e-6, abs=1e-6)
    # Objects keyed by feature name are the same instances.
    same = client.post(contract.predict_path(NAME), json={"instances": _objects(rows)})
    assert same.json() == r.json()


def test_columnar_inputs_get_columnar_values(client: TestClient) -> None:
    rows = ROWS[:5]
    rowwise = client.post(contract.predict_path(NAME), json={"instances": rows}).json()
    inputs = {name: [row[j] for row in rows] for j, name in enumerate(SCHEMA.names)}
    r = client.post(contract.predict_path(NAME), json={"inputs": inputs})
    assert r.status_code == 200, r.text
    assert r.json() == {"outputs": {"value": [p["value"] for p in rowwise["predictions"]]}}


def test_regress_answers_one_value_per_example(client: TestClient) -> None:
    """TF Serving's Regress API: {"examples": [...], "context": {...}} -> {"results": [v, ...]},
    the values predict answers; a feature shared by every example may sit in the context."""
    rows = ROWS[:6]
    values = [
        p["value"]
        for p in client.post(contract.predict_path(NAME), json={"instances": rows}).json()[
            "predictions"
        ]
    ]
    r = client.post(contract.regress_path(NAME), json={"examples": _objects(rows)})
    assert r.status_code == 200, r.text
    assert r.json() == {"results": values}
    shared = [[*row[:4], "pro", row[5]] for row in rows]
    full = client.post(contract.regress_path(NAME), json={"examples": _objects(shared)}).json()
    body = {
        "examples": [{k: v for k, v in e.items() if k != "plan"} for e in _objects(shared)],
        "context": {"plan": ["pro"]},  # a tf.Example feature is a list: a list of one value
        "signature_name": contract.REGRESS_SIGNATURE,
    }
    assert client.post(contract.regress_path(NAME), json=body).json() == full
    bad = {"examples": [{**_objects(rows)[0], "plan": "gold"}]}
    assert "plan" in _error(client.post(contract.regress_path(NAME), json=bad), 400)


def test_regress_on_the_predict_signature_is_refused(client: TestClient) -> None:
    body = {"signature_name": "serving_default", "examples": _objects(ROWS[:1])}
    assert _error(client.post(contract.regress_path(NAME), json=body), 400) == (
        "Expected regression signature method_name to be tensorflow/serving/regress. "
        "Was: tensorflow/serving/predict"
    )


def test_classify_is_refused_as_tf_serving_refuses_it(client: TestClient) -> None:
    """A regressor has no classification signature: TF Serving runs serving_default, a
    predict signature, and fails INVALID_ARGUMENT (HTTP 400)."""
    examples = _objects(ROWS[:2])
    assert _error(client.post(contract.classify_path(NAME), json={"examples": examples}), 400) == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )
    body = {"signature_name": contract.REGRESS_SIGNATURE, "examples": examples}
    assert _error(client.post(contract.classify_path(NAME), json=body), 400).endswith(
        "Was: tensorflow/serving/regress"
    )
    body = {"signature_name": contract.CLASSIFY_SIGNATURE, "examples": examples}
    assert "not found in signature def" in _error(
        client.post(contract.classify_path(NAME), json=body), 400
    )
    # The body is checked like any other first.
    assert "JSON" in _error(client.post(contract.classify_path(NAME), content=b"{"), 400)


def test_metadata_has_a_value_output_and_a_regress_signature(client: TestClient) -> None:
    import importlib

    json_format: Any = importlib.import_module("google.protobuf.json_format")
    meta_graph_pb2: Any = importlib.import_module("tensorflow.core.protobuf.meta_graph_pb2")
    doc = client.get(contract.metadata_path(NAME)).json()
    signatures = doc["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", contract.REGRESS_SIGNATURE}
    predict = json_format.ParseDict(signatures["serving_default"], meta_graph_pb2.SignatureDef())
    assert predict.method_name == "tensorflow/serving/predict"
    assert set(predict.inputs) == set(SCHEMA.names)
    assert list(predict.outputs) == ["value"]
    assert predict.outputs["value"].dtype == 1  # DT_FLOAT
    assert [d.size for d in predict.outputs["value"].tensor_shape.dim] == [-1, 1]
    regress = json_format.ParseDict(
        signatures[contract.REGRESS_SIGNATURE], meta_graph_pb2.SignatureDef()
    )
    assert regress.method_name == "tensorflow/serving/regress"
    assert list(regress.inputs) == ["inputs"]
    assert list(regress.outputs) == ["outputs"]
    assert doc["mlops"]["task"] == "regression"
    assert "classes" not in doc["mlops"]
    assert doc["mlops"]["release"] == RELEASE


def _samples(client: TestClient) -> dict[tuple[str, str], float]:
    """The predictions counter and the reference class-ratio gauge, by ``class`` label."""
    text = client.get("/metrics").text
    return {
        (s.name, s.labels["class"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("mlops_predictions_total", "mlops_reference_class_ratio")
    }


def test_predictions_are_counted_by_bin_of_the_value(
    client: TestClient, model_dir: Path, model: bytes
) -> None:
    """Under the ``class`` label a regressor's predictions count per bin of the predicted
    value, by the profile's edges: the bins the reference's class ratios are shares of."""
    edges = np.asarray(json.loads((model_dir / PROFILE).read_text())["prediction_edges"])
    rows = ROWS[100:132]
    bins = prediction_bins(np.asarray(regression_model.predicted(model, SCHEMA, rows)), edges)
    before = _samples(client)
    assert client.post(contract.predict_path(NAME), json={"instances": rows}).status_code == 200
    assert client.post(contract.regress_path(NAME), json={"examples": _objects(rows[:3])})
    after = _samples(client)
    labels = {str(i) for i in range(edges.size + 1)}
    assert {c for n, c in after if n == "mlops_predictions_total"} == labels
    assert {c for n, c in after if n == "mlops_reference_class_ratio"} == labels
    want = np.bincount(bins, minlength=edges.size + 1) + np.bincount(
        bins[:3], minlength=edges.size + 1
    )
    got = [
        after[("mlops_predictions_total", str(i))]
        - before.get(("mlops_predictions_total", str(i)), 0.0)
        for i in range(edges.size + 1)
    ]
    assert got == want.tolist()
    assert len(set(bins.tolist())) > 1  # the rows do fall in different bins


def _rewritten(model_dir: Path, out: Path, **changes: Any) -> Path:
    bad = out / "model"
    shutil.copytree(model_dir, bad)
    sig = Signature.from_json((bad / SIGNATURE).read_text())
    (bad / SIGNATURE).write_text(Signature(**{**sig.__dict__, **changes}).to_json())
    return bad


def _unready(model_dir: Path) -> dict[str, Any]:
    for client in _client(model_dir):
        r = client.get("/readyz")
        assert r.status_code == 503
        body = client.post(contract.predict_path(NAME), json={"instances": ROWS[:1]})
        assert body.status_code == 503
        status = client.get(contract.model_path(NAME)).json()["model_version_status"][0]
        assert status["state"] == "END"
        return {"reason": r.json()["reason"], "code": status["status"]["error_code"]}
    raise AssertionError("no client")


def test_a_self_test_value_off_by_more_than_the_tolerance_keeps_it_unready(
    model_dir: Path, tmp_path: Path
) -> None:
    sig = Signature.from_json((model_dir / SIGNATURE).read_text())
    wrong = [*sig.self_test_values[:-1], sig.self_test_values[-1] + 0.01]
    unready = _unready(_rewritten(model_dir, tmp_path, self_test_values=wrong))
    assert unready["code"] == "FAILED_PRECONDITION"
    assert unready["reason"].startswith("self-test failed: predicted [")


def test_a_self_test_value_within_the_tolerance_passes(model_dir: Path, tmp_path: Path) -> None:
    """Not exact equality: another CPU's kernels may round the last bits differently."""
    sig = Signature.from_json((model_dir / SIGNATURE).read_text())
    near = [v + 1e-6 * max(1.0, abs(v)) for v in sig.self_test_values]
    for client in _client(_rewritten(model_dir, tmp_path, self_test_values=near)):
        assert client.get("/readyz").status_code == 200


def test_a_classifier_signature_on_a_one_output_model_is_refused_at_load(
    model_dir: Path, tmp_path: Path
) -> None:
    bad = _rewritten(
        model_dir,
        tmp_path,
        task="classification",
        classes=[0, 1],
        self_test_classes=[0] * 5,
        self_test_values=[],
        profile_sha256="",
    )
    unready = _unready(bad)
    assert unready["code"] == "INVALID_ARGUMENT"
    assert "has 1 output(s); a classification model of this signature has 2" in unready["reason"]


def test_a_profile_without_prediction_edges_is_refused(model_dir: Path, tmp_path: Path) -> None:
    import hashlib

    doc = json.loads((model_dir / PROFILE).read_text())
    del doc["prediction_edges"]
    data = json.dumps(doc).encode()
    bad = _rewritten(model_dir, tmp_path, profile_sha256=hashlib.sha256(data).hexdigest())
    (bad / PROFILE).write_bytes(data)
    unready = _unready(bad)
    assert "prediction edges do not fit a regression model" in unready["reason"]


def test_the_smoke_job_checks_a_regressors_values(model_dir: Path, tmp_path: Path) -> None:
    sig = Signature.from_json((model_dir / SIGNATURE).read_text())
    with server(model_dir, tmp_path, MLOPS_RELEASE_ID=RELEASE) as srv:
        base = srv.url("")
        assert smoke.check(base, NAME, RELEASE, sig) == ""
        off = Signature(
            **{**sig.__dict__, "self_test_values": [v + 1 for v in sig.self_test_values]}
        )
        assert smoke.check(base, NAME, RELEASE, off).startswith("self-test values [")

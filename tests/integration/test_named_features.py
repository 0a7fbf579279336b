"""A model of named features end to end: a synthetic CSV (float, int, bool, categorical and a
nullable float) through ingest, validate (GX), train (TF), evaluate (LiteRT) and the gate, then
served, answering objects keyed by feature name as evaluate predicted. The model folder lives
in a temporary copy of the repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from pipelines import evidence
from pipelines.adapters.artifacts import sha256_file
from pipelines.adapters.datasets import request_instances
from pipelines.config import load_model
from pipelines.core.infra_validation import table_requests
from pipelines.errors import DataInvalid
from pipelines.serving.app import create_app
from pipelines.serving.contract import Metric
from pipelines.serving.reference import PROFILE
from pipelines.serving.runtime import MODEL_FILE, SIGNATURE, Signature
from pipelines.serving.settings import Settings
from pipelines.stages import evaluate, gate, ingest, train, validate
from pipelines.stages.package import signature
from tests import table_model
from tests.conftest import copy_repo, edit_model_yaml

NAME = table_model.NAME
MAX_BATCH = 64


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy with models/churn/, taken through the pipeline up to the gate."""
    root = copy_repo(tmp_path_factory.mktemp("churn"))
    table_model.write_model(root)
    # A classifier's slices: by each plan, and by tenure below and above 50.
    slices = [
        {"feature": "plan", "min_accuracy": 0.5, "min_rows": 5},
        {"feature": "tenure", "bins": [50], "min_accuracy": 0.5, "min_rows": 5},
    ]
    edit_model_yaml(root, {"gate.slices": slices}, NAME)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "churn model"], cwd=root, check=True)
    ws = load_model(root, NAME)
    ingest.run(ws)
    validate.run(ws)
    train.run(ws)
    evaluate.run(ws)
    gate.run(ws)
    return root


def test_the_pipeline_blesses_a_model_of_named_features(churn: Path) -> None:
    out = churn / "artifacts" / NAME
    metrics = json.loads((out / "evaluate/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.75
    blessing = json.loads((out / "gate/blessing.json").read_text())
    assert blessing["blessed"] is True
    assert [s["name"] for s in blessing["slices"]] == [
        "plan=basic",
        "plan=plus",
        "plan=pro",
        "tenure in [-inf, 50)",
        "tenure in [50, inf)",
    ]
    assert sum(s["n"] for s in blessing["slices"][:3]) == metrics["n"]  # each row in one plan
    assert any(r["rule"] == "slices" and r["passed"] for r in blessing["rules"])
    profile = json.loads((out / "train" / PROFILE).read_text())
    schema = load_model(churn, NAME).model.data.feature_schema()
    assert profile["features"] == schema.monitored_names
    assert "plan=pro" in profile["features"]
    assert "rating:null" in profile["features"]
    # The null indicator's mean is the share of nulls in the training split.
    train_split = pd.read_parquet(churn / f"data/{NAME}/train.parquet")
    null_share = profile["mean"][profile["features"].index("rating:null")]
    assert null_share == pytest.approx(train_split["rating"].isna().mean())
    summary = json.loads((out / "validate/summary.json").read_text())
    assert summary["success"] is True


@pytest.fixture(scope="module")
def model_dir(churn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = load_model(churn, NAME)
    out = tmp_path_factory.mktemp("model")
    artifact = churn / f"artifacts/{NAME}/train/model.tflite"
    shutil.copy(artifact, out / MODEL_FILE)
    shutil.copy(churn / f"artifacts/{NAME}/train" / PROFILE, out / PROFILE)
    sig = signature(ws, sha256_file(artifact), sha256_file(out / PROFILE))
    (out / SIGNATURE).write_text(sig.to_json())
    return out


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_dir=model_dir, release="r1", color="blue", max_batch=MAX_BATCH, max_body_bytes=65536
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_the_signature_carries_the_schema_and_raw_self_test_rows(model_dir: Path) -> None:
    sig = Signature.from_json((model_dir / SIGNATURE).read_text())
    assert [f["name"] for f in sig.features] == [f["name"] for f in table_model.FEATURES]
    assert sig.image_shape is None
    json.dumps(sig.self_test_instances, allow_nan=False)  # a null is null, never NaN
    assert all(isinstance(row[4], str) for row in sig.self_test_instances)


def test_the_server_answers_objects_and_rows_as_evaluate_predicted(
    churn: Path, client: TestClient
) -> None:
    assert client.get("/readyz").status_code == 200  # the self-test on raw rows passed
    ws = load_model(churn, NAME)
    test = pd.read_parquet(churn / f"data/{NAME}/test.parquet")
    want = pd.read_parquet(churn / f"artifacts/{NAME}/evaluate/predictions.parquet")
    for named in (True, False):
        instances = request_instances(ws, test, named=named)
        r = client.post(f"/v1/models/{NAME}:predict", json={"instances": instances})
        assert r.status_code == 200, r.text
        got = [p["class"] for p in r.json()["predictions"]]
        assert got == want["predicted"].tolist()
    assert any(i["rating"] is None for i in request_instances(ws, test))


def test_metadata_shows_the_schema(client: TestClient) -> None:
    meta = client.get(f"/v1/models/{NAME}/metadata").json()
    inputs = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert {k: v["dtype"] for k, v in inputs.items()} == {
        "tenure": "DT_FLOAT",
        "spend": "DT_FLOAT",
        "calls": "DT_INT64",
        "online": "DT_BOOL",
        "plan": "DT_STRING",
        "rating": "DT_FLOAT",
    }
    schema = meta["mlops"]["schema"]
    assert schema[4] == {
        "name": "plan",
        "type": "categorical",
        "values": ["basic", "plus", "pro"],
        "nullable": False,
    }
    assert schema[5]["nullable"] is True
    assert meta["mlops"]["instance_forms"] == ["row", "object"]


def test_every_request_verify_generates_from_the_schema_is_refused(
    churn: Path, client: TestClient
) -> None:
    schema = load_model(churn, NAME).model.data.feature_schema()
    cases = table_requests(NAME, schema, MAX_BATCH, 65536)  # type: ignore[arg-type]
    names = {c.name for c in cases}
    for expected in ("plan: outside the vocabulary", "calls: null", "tenure: a number as a string"):
        assert expected in names
    assert "rating: null" not in names  # rating is nullable
    for case in cases:
        r = client.request(case.method, case.path, content=case.body)
        assert r.status_code == case.expect, (case.name, r.text)
        assert r.json()["error"], case.name
    assert client.get("/readyz").status_code == 200


def test_the_input_gauges_are_keyed_by_the_encoded_inputs(client: TestClient) -> None:
    ok = {"tenure": 1, "spend": 0, "calls": 2, "online": False, "plan": "pro", "rating": None}
    assert client.post(f"/v1/models/{NAME}:predict", json={"instances": [ok]}).status_code == 200
    text = client.get("/metrics").text
    features = {
        s.labels["feature"]
        for family in text_string_to_metric_families(text)
        if family.name == Metric.FEATURE_SUM.removesuffix("_total")
        for s in family.samples
    }
    assert {"plan=pro", "rating:null", "tenure"} <= features


def test_validation_checks_the_named_features(churn: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(churn, root, symlinks=True)
    csv = root / f"models/{NAME}/table.csv"
    frame = pd.read_csv(csv)
    frame.loc[3, "plan"] = "gold"  # outside the vocabulary
    frame.loc[4, "calls"] = 99  # outside the range
    frame.loc[5, "tenure"] = None  # null where not allowed
    frame.to_csv(csv, index=False)
    ws = load_model(root, NAME)
    ingest.run(ws)
    with pytest.raises(DataInvalid) as err:
        validate.run(ws)
    text = str(err.value)
    assert ".plan: expect_column_values_to_be_in_set" in text
    assert ".calls: expect_column_values_to_be_between" in text
    assert ".tenure: expect_column_values_to_not_be_null" in text
    # The failed validation vouches for nothing: no reference statistics for training.
    assert not (ws.artifacts("validate") / evidence.ReferenceStats.FILE).exists()

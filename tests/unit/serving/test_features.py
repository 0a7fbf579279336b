"""The one preprocessing (pipelines/serving/features.py): encodings, nulls, the signature's round
trip, and the same model input for a raw row whether training reads it from a table or the
server from a request."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.adapters.datasets import model_inputs, parquet_bytes, request_instances
from pipelines.config import ModelConfig, Workspace
from pipelines.serving.app import _model_input, parse_table
from pipelines.serving.features import Feature, TableSchema, scale_features
from pipelines.serving.jsonbody import decode
from pipelines.serving.runtime import Signature
from tests import table_model

WS = Workspace(Path("/nonexistent"), ModelConfig.model_validate(table_model.MODEL))
SCHEMA = table_model.schema()


def test_each_type_is_encoded_as_documented() -> None:
    rows = [
        [25.0, 0.0, 4, True, "plus", 2.5],
        [100.0, -50.0, 0, False, "pro", None],
    ]
    x = SCHEMA.encode_rows(rows)
    assert x.dtype == np.float32
    # tenure, spend, calls, online, plan=basic/plus/pro, rating, rating:null
    want = [
        [0.25, 0.5, 0.2, 1.0, 0.0, 1.0, 0.0, 0.5, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0],
    ]
    assert np.array_equal(x, np.array(want, dtype=np.float32))


def test_a_nullable_categorical_and_bool_encode_null_as_zeros_and_the_indicator() -> None:
    schema = TableSchema(
        (
            Feature("c", "categorical", values=(3, 5), nullable=True),
            Feature("b", "bool", nullable=True),
        )
    )
    assert schema.encoded_names == ["c=3", "c=5", "c:null", "b", "b:null"]
    assert schema.encode_rows([[5, None], [None, True]]).tolist() == [
        [0, 1, 0, 0, 1],
        [0, 0, 1, 1, 0],
    ]


def test_pandas_nulls_are_nulls() -> None:
    f = Feature("r", "float", 0.0, 1.0, nullable=True)
    schema = TableSchema((f,))
    column = pd.array([0.5, None], dtype="Float64").to_numpy(dtype=object)  # pd.NA
    assert schema.encode([column]).tolist() == schema.encode([[0.5, float("nan")]]).tolist()


def test_a_value_outside_the_vocabulary_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="'gold' is not in the vocabulary"):
        TableSchema((Feature("p", "categorical", values=("a",)),)).encode([["gold"]])


def test_the_image_shorthand_is_unchanged() -> None:
    raw = np.arange(64, dtype=np.float64).reshape(1, 64) % 17
    digits = ModelConfig.model_validate(
        {**table_model.MODEL, "data": {**table_model.MODEL["data"], "features": IMAGE}}
    ).data.feature_schema()
    x = digits.encode(raw)  # type: ignore[arg-type]
    assert x.shape == (1, 8, 8, 1)
    assert np.array_equal(x, scale_features(raw, 0.0, 16.0, (8, 8)))
    assert digits.monitored_names == [f"pixel_{i}" for i in range(64)]


IMAGE = {"prefix": "pixel_", "count": 64, "image_shape": [8, 8], "min": 0, "max": 16}


def test_the_schema_travels_in_the_signature() -> None:
    sig = Signature(
        model="churn",
        feature_names=list(SCHEMA.names),
        image_shape=None,
        low=None,
        high=None,
        classes=[0, 1],
        features=SCHEMA.to_list(),
    )
    back = Signature.from_json(sig.to_json())
    assert back == sig
    schema = back.schema()
    assert isinstance(schema, TableSchema)
    assert schema == SCHEMA
    assert schema.encoded_names == SCHEMA.encoded_names


def test_an_image_signature_has_no_features_key() -> None:
    sig = Signature("digits", ["pixel_0"], (1, 1), 0.0, 16.0, [0, 1])
    assert '"features"' not in sig.to_json()
    assert Signature.from_json(sig.to_json()) == sig


# A classifier's signature.json as written before signatures had a task: its bytes, and with
# them the image's digest and release id, must not change.
CLASSIFIER_SIGNATURE = """{
  "classes": [
    0,
    1
  ],
  "feature_names": [
    "pixel_0",
    "pixel_1"
  ],
  "high": 16.0,
  "image_shape": [
    1,
    2
  ],
  "low": 0.0,
  "model": "digits",
  "model_sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "profile_sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
  "self_test_classes": [
    1
  ],
  "self_test_instances": [
    [
      3,
      16
    ]
  ]
}
"""


def test_a_classifiers_signature_json_is_unchanged_by_the_task() -> None:
    sig = Signature(
        "digits",
        ["pixel_0", "pixel_1"],
        (1, 2),
        0.0,
        16.0,
        [0, 1],
        model_sha256="a" * 64,
        self_test_instances=[[3, 16]],
        self_test_classes=[1],
        profile_sha256="b" * 64,
    )
    assert sig.to_json() == CLASSIFIER_SIGNATURE
    assert Signature.from_json(CLASSIFIER_SIGNATURE) == sig
    assert sig.task == "classification"
    assert not sig.regressor
    assert sig.n_outputs == 2


def test_a_regressors_signature_carries_its_task_and_values() -> None:
    sig = Signature(
        model="churn",
        feature_names=list(SCHEMA.names),
        image_shape=None,
        low=None,
        high=None,
        classes=[],
        self_test_instances=[SCHEMA.example()],
        features=SCHEMA.to_list(),
        task="regression",
        self_test_values=[12.5],
    )
    raw = json.loads(sig.to_json())
    assert raw["task"] == "regression"
    assert raw["self_test_values"] == [12.5]
    assert raw["self_test_classes"] == []
    assert Signature.from_json(sig.to_json()) == sig
    assert sig.regressor
    assert sig.n_outputs == 1


def _value(f: Feature) -> st.SearchStrategy[Any]:
    if f.type == "float":
        assert f.min is not None
        assert f.max is not None
        value: st.SearchStrategy[Any] = st.floats(f.min, f.max, allow_nan=False)
    elif f.type == "int":
        assert f.min is not None
        assert f.max is not None
        value = st.integers(int(f.min), int(f.max))
    elif f.type == "bool":
        value = st.booleans()
    else:
        value = st.sampled_from(f.values)
    return st.none() | value if f.nullable else value


ROWS = st.lists(st.tuples(*(_value(f) for f in SCHEMA.features)), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(rows=ROWS)
def test_training_and_the_server_make_the_same_model_input(rows: list[tuple[Any, ...]]) -> None:
    frame = pd.DataFrame([list(r) for r in rows], columns=SCHEMA.names)
    # What training reads: the split as ingest writes it (Parquet) and train reads it back.
    table = pd.read_parquet(io.BytesIO(parquet_bytes(frame)))
    trained = model_inputs(WS, table)
    # What the server gets: the same rows as a client sends them, as objects and as rows.
    for named in (True, False):
        body = orjson.dumps({"instances": request_instances(WS, table, named=named)})
        served, observed = _model_input(SCHEMA, parse_table(decode(body), SCHEMA, 256))
        assert np.array_equal(trained, served)
        assert np.array_equal(observed, trained.astype(np.float64))
    # And every encoded value lies in [0, 1], whatever the declared ranges.
    assert ((trained >= 0) & (trained <= 1)).all()


@settings(max_examples=40, deadline=None)
@given(rows=ROWS)
def test_encoding_round_trips_to_the_raw_values(rows: list[tuple[Any, ...]]) -> None:
    x = SCHEMA.encode_rows(rows)
    at = 0
    for j, f in enumerate(SCHEMA.features):
        block = x[:, at : at + f.width]
        for i, row in enumerate(rows):
            raw = row[j]
            if f.nullable and block[i, -1] == 1:
                assert raw is None
                assert not block[i, :-1].any()
                continue
            if f.type == "categorical":
                assert f.values[int(block[i, : len(f.values)].argmax())] == raw
            elif f.type == "bool":
                assert bool(block[i, 0]) is raw
            else:
                assert f.min is not None
                assert f.max is not None
                back = f.min + float(block[i, 0]) * (f.max - f.min)
                assert back == pytest.approx(raw, abs=1e-4 * (f.max - f.min))
        at += f.width


def test_integers_that_pandas_made_floats_are_sent_and_encoded_as_integers() -> None:
    features = [
        {"name": "n", "type": "int", "min": 0, "max": 9, "nullable": True},
        {"name": "k", "type": "categorical", "values": [3, 5], "nullable": True},
    ]
    doc = {**table_model.MODEL, "data": {**table_model.MODEL["data"], "features": features}}
    ws = Workspace(Path("/nonexistent"), ModelConfig.model_validate(doc))
    schema = ws.model.data.feature_schema()
    assert isinstance(schema, TableSchema)
    frame = pd.DataFrame({"n": [4, None], "k": [5, None]})  # both float64, with NaN
    instances = request_instances(ws, frame)
    assert instances == [{"n": 4, "k": 5}, {"n": None, "k": None}]
    assert type(instances[0]["k"]) is int
    served, _ = _model_input(schema, parse_table({"instances": instances}, schema, 8))
    assert np.array_equal(served, model_inputs(ws, frame))
    # A client's 5.0 for an integer vocabulary is 5, as for an int feature.
    assert parse_table({"instances": [[4.0, 5.0]]}, schema, 8) == [[4.0, 5.0]]
    assert np.array_equal(schema.encode_rows([[4.0, 5.0]]), schema.encode_rows([[4, 5]]))

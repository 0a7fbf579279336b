"""Small real regression models, made without the pipeline: a Keras network with one linear
output over a schema's encoded named features, converted to TFLite as train converts, and the
folder the serving image holds for it (model, signature, reference profile).

``half_plus_three`` is TF Serving's example model (api_rest.md, "Example") in this server's
terms: one feature x in [0, 10], which the schema scales to x / 10, and y = 5 * (x / 10) + 3.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.adapters.training import to_tflite
from pipelines.core import profile
from pipelines.serving.features import TableSchema
from pipelines.serving.reference import PROFILE
from pipelines.serving.runtime import MODEL_FILE, REGRESSION, SIGNATURE, Runtime, Signature

HALF_PLUS_THREE: list[dict[str, Any]] = [{"name": "x", "type": "float", "min": 0, "max": 10}]
SELF_TEST_EXAMPLES = 5


def half_plus_three() -> bytes:
    """TFLite bytes of y = x / 2 + 3 over the encoded x (x / 10): weight 5, bias 3."""
    import tensorflow as tf

    keras = tf.keras
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1, name="value")])
    model.layers[-1].set_weights([np.array([[5.0]]), np.array([3.0])])
    return to_tflite(tf, model, "none")


def dense_regressor(width: int, seed: int = 0) -> bytes:
    """TFLite bytes of a small untrained network, Dense(8, relu) then one linear unit, over
    ``width`` encoded inputs: its values are arbitrary but fixed by the seed."""
    import tensorflow as tf

    keras = tf.keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(width,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, name="value"),
        ]
    )
    return to_tflite(tf, model, "none")


def predicted(model: bytes, schema: TableSchema, rows: list[list[Any]]) -> list[float]:
    """What LiteRT predicts for raw rows, as evaluate would record it."""
    out = Runtime(model).predict(schema.encode_rows(rows))
    return [float(v) for v in out.reshape(-1)]


def _profile(schema: TableSchema, rows: list[list[Any]], values: list[float]) -> dict[str, Any]:
    """The parts of train's profile.json the server reads, computed as train computes them:
    a regressor's classes are the bins of its predicted value."""
    x = schema.monitored(schema.encode_rows(rows))
    v = np.asarray(values)
    edges = profile.prediction_edges(v)
    k = edges.size + 1
    gaussian = profile.fit_gaussian(x)
    eps = profile.anomaly_threshold(gaussian, x, 0.01)
    return {
        "features": schema.monitored_names,
        "mean": x.mean(axis=0).tolist(),
        "stddev": np.maximum(x.std(axis=0), 1e-3).tolist(),
        "classes": list(range(k)),
        "class_ratio": profile.class_ratio(profile.prediction_bins(v, edges), k).tolist(),
        "prediction_edges": edges.tolist(),
        "anomaly": {
            "center": gaussian.center.tolist(),
            "precision": gaussian.precision.tolist(),
            "threshold": eps.threshold,
            "false_alarm_rate": 0.01,
        },
        "drift": {
            "window_instances": 50,
            "feature_effect": 0.5,
            "drifted_fraction": 0.2,
            "prediction_psi": 0.1,
        },
    }


def write_model_dir(
    out: Path,
    name: str,
    model: bytes,
    features: list[dict[str, Any]],
    rows: list[list[Any]],
    with_profile: bool = True,
) -> Path:
    """The folder the image holds for a regressor: the model, its signature (self-test values
    are what LiteRT predicts for the first rows) and, as package ships it, the profile computed
    on ``rows``."""
    schema = TableSchema.from_list(features)
    values = predicted(model, schema, rows)
    (out / MODEL_FILE).write_bytes(model)
    profile_sha = ""
    if with_profile:
        data = json.dumps(_profile(schema, rows, values)).encode()
        (out / PROFILE).write_bytes(data)
        profile_sha = hashlib.sha256(data).hexdigest()
    sig = Signature(
        model=name,
        feature_names=schema.names,
        image_shape=None,
        low=None,
        high=None,
        classes=[],
        model_sha256=hashlib.sha256(model).hexdigest(),
        self_test_instances=rows[:SELF_TEST_EXAMPLES],
        profile_sha256=profile_sha,
        features=schema.to_list(),
        task=REGRESSION,
        self_test_values=values[:SELF_TEST_EXAMPLES],
    )
    (out / SIGNATURE).write_text(sig.to_json())
    return out

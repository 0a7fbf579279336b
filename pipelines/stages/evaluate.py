"""evaluate: score the serving artifact itself (LiteRT, not Keras) on the held-out test split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.adapters import plots
from pipelines.adapters.artifacts import (
    TFLITE,
    invalidate,
    provenance,
    read_json,
    sha256_file,
    staged_dir,
    write_json,
)
from pipelines.adapters.datasets import (
    ROW_ID,
    features_and_labels,
    fingerprint,
    parquet_bytes,
    read_table,
    write_if_changed,
)
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import Workspace
from pipelines.core.metrics import classification, latency_summary
from pipelines.errors import ConfigError
from pipelines.stages.train import PARAMS
from pipelines.stages.validate import require_valid_data

METRICS = "metrics.json"
PREDICTIONS = "predictions.parquet"


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]
    metrics_path: Path


def candidate_artifact(ws: Workspace) -> Path:
    return ws.artifacts("train") / TFLITE


def trained_model(ws: Workspace) -> dict[str, Any]:
    """Train's provenance, checked against the artifact on disk and the current data."""
    artifact = candidate_artifact(ws)
    path = ws.artifacts("train") / "provenance.json"
    if not path.is_file() or not artifact.is_file():
        raise ConfigError(f"no trained model at {artifact}", hint="run `mlops train` first")
    trained: dict[str, Any] = read_json(path)
    if trained.get("model_sha256") != sha256_file(artifact):
        raise ConfigError(
            f"{artifact} is not the model train recorded in {path}", hint="run `mlops train` again"
        )
    if trained.get("data_fingerprint") != fingerprint(ws):
        raise ConfigError(
            "the model was trained on other data than the current dataset",
            hint="run `mlops train` again",
        )
    if trained.get("classes") != ws.model.data.label.classes:
        raise ConfigError(
            f"the model was trained for the classes {trained.get('classes')}, "
            f"model.yaml now lists {ws.model.data.label.classes}",
            hint="run `mlops train` again",
        )
    return trained


def run(ws: Workspace) -> EvaluateResult:
    final = ws.artifacts("evaluate")
    invalidate(final)  # an error below must not leave the previous metrics for the gate
    require_valid_data(ws)
    trained = trained_model(ws)
    artifact = candidate_artifact(ws)
    test = read_table(ws.split_path("test"), "test split")
    x, y = features_and_labels(ws, test)
    scored = TFLiteModel.load(artifact).score(x)
    classes = ws.model.data.label.classes
    metrics = classification(y, scored.predictions, classes)
    digest = sha256_file(artifact)
    metrics.update(
        {
            "model": ws.name,
            "model_sha256": digest,
            "data_fingerprint": fingerprint(ws),
            "size_bytes": artifact.stat().st_size,
            "latency_ms": latency_summary(scored.latencies_ms),
            "trained": trained,
            "provenance": provenance(ws.root, ws.model.section_hash(*PARAMS, "gate")),
        }
    )
    predictions = pd.DataFrame(
        {
            ROW_ID: test[ROW_ID].to_numpy(dtype=np.int64),
            "label": np.asarray(classes)[y],
            "predicted": np.asarray(classes)[scored.predictions],
            "confidence": scored.probabilities.max(axis=1).astype(np.float64),
        }
    )
    with staged_dir(final) as out:
        write_json(out / METRICS, metrics)
        write_if_changed(out / PREDICTIONS, parquet_bytes(predictions))
        plots.confusion_matrix(metrics["confusion_matrix"], classes, out / "confusion_matrix.png")
    return EvaluateResult(metrics, final / METRICS)

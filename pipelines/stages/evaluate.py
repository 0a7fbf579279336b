"""evaluate: score the serving artifact itself (LiteRT, not Keras) on the held-out test split."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.adapters import plots
from pipelines.adapters.artifacts import (
    METRICS,
    PREDICTIONS,
    fingerprint,
    invalidate,
    sha256_file,
    staged_dir,
)
from pipelines.adapters.datasets import (
    ROW_ID,
    features_and_labels,
    parquet_bytes,
    read_table,
    write_if_changed,
)
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import Workspace
from pipelines.core.metrics import classification, latency_summary
from pipelines.core.regression import regression_metrics
from pipelines.evidence import (
    TRAIN_PARAMS,
    Metrics,
    Provenance,
    candidate_artifact,
    made,
    require_trained,
    require_valid_data,
    save,
)

# The plot beside metrics.json: a classifier's confusion matrix, a regressor's residuals.
CONFUSION, RESIDUALS = "confusion_matrix.png", "residuals.png"


@dataclass(frozen=True)
class EvaluateResult:
    """The test metrics and the file they were written to."""

    metrics: Metrics
    metrics_path: Path


def run(ws: Workspace) -> EvaluateResult:
    """Score the candidate's TFLite artifact on the test split and write metrics.json."""
    final = ws.artifacts("evaluate")
    invalidate(final)  # an error below must not leave the previous metrics for the gate
    require_valid_data(ws)
    trained = require_trained(ws)
    artifact = candidate_artifact(ws)
    test = read_table(ws.split_path("test"), "test split")
    x, y = features_and_labels(ws, test)
    scored = TFLiteModel.load(artifact).score(x)
    row_ids = test[ROW_ID].to_numpy(dtype=np.int64)
    if ws.model.task == "regression":
        target, value = y.astype(np.float64), scored.values
        task = asdict(regression_metrics(target, value)) | {"n": len(target)}
        predictions = pd.DataFrame(
            {
                ROW_ID: row_ids,
                "label": target,
                "predicted": value,
                "abs_error": np.abs(value - target),
            }
        )
    else:
        classes = ws.model.classes
        task = classification(y, scored.predictions, classes)
        predictions = pd.DataFrame(
            {
                ROW_ID: row_ids,
                "label": np.asarray(classes)[y],
                "predicted": np.asarray(classes)[scored.predictions],
                "confidence": scored.probabilities.max(axis=1).astype(np.float64),
            }
        )
    metrics = Metrics(
        **task,
        task=ws.model.task,
        model=ws.name,
        model_sha256=sha256_file(artifact),
        data_fingerprint=fingerprint(ws),
        size_bytes=artifact.stat().st_size,
        latency_ms=latency_summary(scored.latencies_ms),
        trained=trained,
        provenance=made(Provenance, ws.root, ws.model.section_hash(*TRAIN_PARAMS, "gate")),
    )
    with staged_dir(final) as out:
        save(out / METRICS, metrics)
        write_if_changed(out / PREDICTIONS, parquet_bytes(predictions))
        if ws.model.task == "regression":
            plots.residuals(target.tolist(), value.tolist(), out / RESIDUALS)
        else:
            plots.confusion_matrix(metrics.confusion_matrix, classes, out / CONFUSION)
    return EvaluateResult(metrics, final / METRICS)

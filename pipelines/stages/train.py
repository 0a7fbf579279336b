"""train: fit the model's Keras network with fixed seeds and export the TFLite serving artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pipelines.adapters import plots, training
from pipelines.adapters.artifacts import (
    PROFILE,
    PROVENANCE,
    TFLITE,
    fingerprint,
    invalidate,
    sha256_file,
    staged_dir,
    write_bytes,
    write_json,
)
from pipelines.adapters.datasets import features_and_labels, read_table
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import PROFILE_PARAMS, Workspace
from pipelines.core import profile
from pipelines.evidence import (
    TRAIN_PARAMS,
    AnomalyModel,
    DriftCalibration,
    ModelProvenance,
    Profile,
    TrainingRecord,
    made,
    require_valid_data,
    save,
)

# A feature that never moved in training (digits' blank corners) gets this share of its declared
# range as standard deviation: a live window may move it a little before it counts as drifted.
STDDEV_FLOOR_OF_RANGE = 0.01


@dataclass(frozen=True)
class TrainResult:
    """The TFLite artifact, its hash, epochs run and the final validation accuracy."""

    tflite: Path
    tflite_sha256: str
    epochs: int
    final_val_accuracy: float


def _raw(ws: Workspace, df: pd.DataFrame) -> NDArray[np.float64]:
    return df[ws.model.data.features.columns].to_numpy(dtype=np.float64)


def reference_profile(
    ws: Workspace, tflite: Path, train: pd.DataFrame, validation: pd.DataFrame
) -> Profile:
    """The profile of the exported model: statistics and Gaussian from the training split,
    predicted-class shares of the served artifact itself, thresholds calibrated on validation."""
    cfg, spec, classes = ws.model.monitoring, ws.model.data.features, ws.model.data.label.classes
    x_train, x_val = _raw(ws, train), _raw(ws, validation)
    served = TFLiteModel.load(tflite, "exported model")
    pred_train, pred_val = (
        served.score(features_and_labels(ws, df)[0]).predictions for df in (train, validation)
    )
    features = profile.feature_profile(x_train, STDDEV_FLOOR_OF_RANGE * (spec.max - spec.min))
    ratio = profile.class_ratio(pred_train, len(classes))
    gaussian = profile.fit_gaussian(x_train)
    eps = profile.anomaly_threshold(gaussian, x_val, cfg.anomaly_false_alarm_rate)
    drift = profile.drift_thresholds(
        x_val,
        pred_val,
        features,
        ratio,
        window=cfg.window_instances,
        windows=cfg.bootstrap_windows,
        false_alarm_rate=cfg.false_alarm_rate,
        seed=cfg.seed,
    )
    digest = sha256_file(tflite)
    return Profile(
        model=ws.name,
        model_sha256=digest,
        rows=len(train),
        validation_rows=len(validation),
        features=spec.columns,
        mean=features.mean.tolist(),
        stddev=features.stddev.tolist(),
        stddev_floor=STDDEV_FLOOR_OF_RANGE * (spec.max - spec.min),
        bins=features.bins.tolist(),
        classes=classes,
        class_ratio=ratio.tolist(),
        anomaly=AnomalyModel(
            center=gaussian.center.tolist(),
            precision=gaussian.precision.tolist(),
            shrinkage=gaussian.shrinkage,
            threshold=eps.threshold,
            false_alarm_rate=cfg.anomaly_false_alarm_rate,
            validation_rate=eps.held_out_rate,
        ),
        drift=DriftCalibration(
            window_instances=cfg.window_instances,
            false_alarm_rate=cfg.false_alarm_rate,
            windows=cfg.bootstrap_windows,
            seed=cfg.seed,
            feature_effect=drift.feature_effect,
            drifted_fraction=drift.drifted_fraction,
            prediction_psi=drift.prediction_psi,
            psi_floor=profile.PSI_FLOOR,
        ),
        provenance=made(
            ModelProvenance,
            ws.root,
            ws.model.section_hash(*(f"monitoring.{k}" for k in PROFILE_PARAMS)),
            model_sha256=digest,
        ),
    )


def run(ws: Workspace) -> TrainResult:
    """Train the model on the validated data and export its TFLite artifact."""
    final = ws.artifacts("train")
    invalidate(final)  # a failed training must not leave the previous model to evaluate
    require_valid_data(ws)
    data_fingerprint = fingerprint(ws)
    cfg = ws.model.training
    data = ws.model.data
    train_df = read_table(ws.split_path("train"), "train split")
    val_df = read_table(ws.split_path("validation"), "validation")
    x_train, y_train = features_and_labels(ws, train_df)
    x_val, y_val = features_and_labels(ws, val_df)

    tf = training.import_tensorflow(cfg.threads)
    fitted = training.fit(ws, tf.keras, (x_train, y_train), (x_val, y_val), training.Hyper.of(ws))
    model, curves = fitted.model, fitted.curves

    with staged_dir(final) as out:
        model.save(out / "model.keras")
        write_bytes(out / TFLITE, training.to_tflite(tf, model, ws.model.export.quantization))
        write_json(out / "history.json", curves)
        plots.training_curves(curves, out / "curves.png")
        digest = sha256_file(out / TFLITE)
        save(out / PROFILE, reference_profile(ws, out / TFLITE, train_df, val_df))
        save(
            out / PROVENANCE,
            made(
                TrainingRecord,
                ws.root,
                ws.model.section_hash(*TRAIN_PARAMS),
                model_sha256=digest,
                tensorflow=tf.__version__,
                quantization=ws.model.export.quantization,
                classes=data.label.classes,
                data_fingerprint=data_fingerprint,
                tuned_study=ws.tuned.study if ws.tuned else None,
            ),
        )
    return TrainResult(final / TFLITE, digest, cfg.epochs, curves["val_accuracy"][-1])

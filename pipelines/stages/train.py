"""train: fit the model's Keras network with fixed seeds and export the TFLite serving artifact."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.adapters import modelcode, plots
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
from pipelines.adapters.datasets import features_and_labels, monitored, read_table
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import PROFILE_PARAMS, Workspace, read_settings
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


def _keras_verbosity() -> int:
    """A live progress bar on a terminal; one line per epoch in logs; silence in CI."""
    if read_settings().ci:
        return 0
    return 1 if sys.stdout.isatty() else 2


def _import_tensorflow(threads: int) -> Any:
    # Sets TensorFlow's default in our own process (a user's value wins); not a setting we read.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Thread pools can only be sized before TF first runs an op; a second call is a no-op error.
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.experimental.enable_op_determinism()
    return tf


def to_tflite(tf: Any, model: Any, quantization: str) -> bytes:
    """Convert a Keras model to TFLite bytes with the configured quantization."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    # The converter prints the traced signature to stdout; keep our output readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


def reference_profile(
    ws: Workspace, tflite: Path, train: pd.DataFrame, validation: pd.DataFrame
) -> Profile:
    """The profile of the exported model: statistics and Gaussian from the training split,
    predicted-class shares of the served artifact itself, thresholds calibrated on validation."""
    cfg, schema, classes = (
        ws.model.monitoring,
        ws.model.data.feature_schema(),
        ws.model.data.label.classes,
    )
    # An image model's profile is of its raw pixels; a model of named features', of its encoded
    # inputs (datasets.monitored): numbers the server sees too, whatever the features' types.
    x_train, x_val = monitored(ws, train), monitored(ws, validation)
    floor = STDDEV_FLOOR_OF_RANGE * schema.monitored_range
    served = TFLiteModel.load(tflite, "exported model")
    pred_train, pred_val = (
        served.score(features_and_labels(ws, df)[0]).predictions for df in (train, validation)
    )
    features = profile.feature_profile(x_train, floor)
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
        features=schema.monitored_names,
        mean=features.mean.tolist(),
        stddev=features.stddev.tolist(),
        stddev_floor=floor,
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

    tf = _import_tensorflow(cfg.threads)
    keras = tf.keras
    # Layer names ("conv2d_1", ...) come from per-process counters and end up in the TFLite
    # flatbuffer; a fresh session makes a second training in one process byte-identical.
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    arch = modelcode.load(ws, cfg.architecture)
    model = arch.build_model(keras, tuple(x_train.shape[1:]), len(data.label.classes), cfg.params)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=cfg.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        shuffle=True,
        verbose=_keras_verbosity(),
    )
    curves = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    with staged_dir(final) as out:
        model.save(out / "model.keras")
        write_bytes(out / TFLITE, to_tflite(tf, model, ws.model.export.quantization))
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
            ),
        )
    return TrainResult(final / TFLITE, digest, cfg.epochs, curves["val_accuracy"][-1])

"""train: fit the model's Keras network with fixed seeds and export the TFLite serving artifact."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pipelines.adapters import plots, training
from pipelines.adapters import workers as local
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
from pipelines.adapters.datasets import Labels, features_and_labels, monitored, read_table
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import PROFILE_PARAMS, Workspace
from pipelines.core import distribution, profile
from pipelines.core.distribution import Cluster
from pipelines.errors import ConfigError, InfraError
from pipelines.evidence import (
    TRAIN_PARAMS,
    AnomalyModel,
    DriftCalibration,
    ModelProvenance,
    Profile,
    TrainingRecord,
    load,
    made,
    require_valid_data,
    save,
)

Progress = Callable[[str], None]

# A feature that never moved in training (digits' blank corners) gets this share of its declared
# range as standard deviation: a live window may move it a little before it counts as drifted.
STDDEV_FLOOR_OF_RANGE = 0.01


def validation_metric(ws: Workspace) -> str:
    """The curve a training run is summed up by: a classifier's validation accuracy, a
    regressor's validation MAE (in the target's units)."""
    return "val_mae" if ws.model.task == "regression" else "val_accuracy"


@dataclass(frozen=True)
class TrainResult:
    """The TFLite artifact, its hash, epochs run, the final validation score (``metric``:
    validation_metric) and how many workers trained it."""

    tflite: Path
    tflite_sha256: str
    epochs: int
    metric: str
    final_val: float
    workers: int = 1

    def summary(self) -> str:
        """The final score as a line says it: "val accuracy 0.9712"."""
        return f"{self.metric.replace('_', ' ')} {self.final_val:.4f}"


def reference_profile(
    ws: Workspace, tflite: Path, train: pd.DataFrame, validation: pd.DataFrame
) -> Profile:
    """The profile of the exported model: statistics and Gaussian from the training split,
    predicted-class shares of the served artifact itself (a regressor's: shares of the decile
    bins of its predicted value), thresholds calibrated on validation."""
    cfg, schema = ws.model.monitoring, ws.model.data.feature_schema()
    # An image model's profile is of its raw pixels; a model of named features', of its encoded
    # inputs (datasets.monitored): numbers the server sees too, whatever the features' types.
    x_train, x_val = monitored(ws, train), monitored(ws, validation)
    floor = STDDEV_FLOOR_OF_RANGE * schema.monitored_range
    served = TFLiteModel.load(tflite, "exported model")
    scored_train, scored_val = (
        served.score(features_and_labels(ws, df)[0]) for df in (train, validation)
    )
    edges = np.empty(0)
    if ws.model.task == "regression":
        edges = profile.prediction_edges(scored_train.values)
        classes = list(range(len(edges) + 1))
        pred_train, pred_val = (
            profile.prediction_bins(s.values, edges) for s in (scored_train, scored_val)
        )
    else:
        classes = ws.model.classes
        pred_train, pred_val = scored_train.predictions, scored_val.predictions
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
        prediction_edges=edges.tolist(),
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


@dataclass(frozen=True)
class _Splits:
    """The training and validation splits as read, and as model inputs and labels."""

    train_df: pd.DataFrame
    val_df: pd.DataFrame
    train: tuple[NDArray[np.float32], Labels]
    validation: tuple[NDArray[np.float32], Labels]


def _splits(ws: Workspace) -> _Splits:
    train_df = read_table(ws.split_path("train"), "train split")
    val_df = read_table(ws.split_path("validation"), "validation")
    return _Splits(
        train_df, val_df, features_and_labels(ws, train_df), features_and_labels(ws, val_df)
    )


def run(ws: Workspace, workers: int | None = None, progress: Progress = print) -> TrainResult:
    """Train the model on the validated data and export its TFLite artifact: in this process
    (one worker, the default), or across ``workers`` local processes over loopback
    (training.distribution.workers unless given)."""
    cfg = ws.model.training
    count = cfg.distribution.workers if workers is None else workers
    problem = distribution.workers_problem(count, local.usable_cpus(), cfg.batch_size)
    if problem:
        raise ConfigError(
            f"cannot train with {count} workers: {problem}",
            hint="pass --workers between 1 and the CPU count (or set "
            "training.distribution.workers), with a batch_size it divides",
        )
    final = ws.artifacts("train")
    invalidate(final)  # a failed training must not leave the previous model to evaluate
    require_valid_data(ws)
    if count > 1:
        return _run_local_workers(ws, count, progress)
    data_fingerprint = fingerprint(ws)
    d = _splits(ws)
    tf = training.import_tensorflow(cfg.threads)
    fitted = training.fit(ws, tf.keras, d.train, d.validation, training.Hyper.of(ws))
    keras = f"keras {tf.keras.__version__}"
    return _export(ws, tf, fitted, d.train_df, d.val_df, data_fingerprint, 1, keras)


def run_worker(ws: Workspace, cluster: Cluster, progress: Progress = print) -> TrainResult | None:
    """Train as one worker of ``cluster`` (MultiWorkerMirroredStrategy, tf_keras). The chief
    (index 0) exports the artifact, exactly as a single worker does, and returns its result;
    the other workers write nothing (the chief saves a plain copy of the model, which needs no
    collective, so they have no save to take part in) and return None."""
    cfg = ws.model.training
    problem = distribution.workers_problem(cluster.size, None, cfg.batch_size)
    if problem:
        raise ConfigError(f"cannot train with {cluster.size} workers: {problem}")
    final = ws.artifacts("train")
    if cluster.is_chief:
        invalidate(final)
    require_valid_data(ws)
    data_fingerprint = fingerprint(ws)
    d = _splits(ws)
    tf = training.import_tensorflow(cfg.threads)
    keras = training.import_tf_keras()
    fitted = training.fit_distributed(
        ws,
        tf,
        keras,
        cluster,
        d.train,
        d.validation,
        training.Hyper.of(ws),
        progress,
    )
    if not cluster.is_chief:
        return None
    name = f"tf_keras {keras.__version__}"
    return _export(ws, tf, fitted, d.train_df, d.val_df, data_fingerprint, cluster.size, name)


def _run_local_workers(ws: Workspace, count: int, progress: Progress) -> TrainResult:
    final = ws.artifacts("train")
    argv = ["train", "--model", ws.name, "--workers", str(count), "--worker"]
    try:
        failure = local.run_local(ws.root, argv, count, progress)
    except BaseException:
        invalidate(final)  # stopped (SIGTERM, Ctrl-C): the chief may have written already
        raise
    if failure is not None:
        invalidate(final)  # the chief may have finished before another worker failed
        tail = "\n".join(f"    {line}" for line in failure.tail) or "    (no output)"
        message = (
            f"training worker {failure.index} of {count} failed ({failure.cause}); the other "
            f"workers were stopped and no model was written. Its last lines:\n{tail}"
        )
        if failure.returncode == ConfigError.exit_code:
            raise ConfigError(message, hint="fix the configuration the worker names, re-run")
        raise InfraError(
            message,
            hint="a worker process died or could not reach the others (memory, a signal, a "
            "port taken between the choice and the bind): re-run `mlops train`, or train with "
            "--workers 1",
        )
    record = load(final / PROVENANCE, TrainingRecord)
    curves = json.loads((final / "history.json").read_text())
    metric = validation_metric(ws)
    epochs = ws.model.training.epochs
    return TrainResult(
        final / TFLITE, record.model_sha256, epochs, metric, curves[metric][-1], record.workers
    )


def _export(
    ws: Workspace,
    tf: Any,
    fitted: training.Fitted,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    data_fingerprint: str,
    workers: int,
    keras: str,
) -> TrainResult:
    """Write the artifact folder at once: the Keras model, its TFLite conversion, the curves,
    the reference profile and the training record."""
    final = ws.artifacts("train")
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
                classes=ws.model.classes,
                data_fingerprint=data_fingerprint,
                tuned_study=ws.tuned.study if ws.tuned else None,
                workers=workers,
                keras=keras,
            ),
        )
    metric, epochs = validation_metric(ws), ws.model.training.epochs
    return TrainResult(final / TFLITE, digest, epochs, metric, curves[metric][-1], workers)

"""Keras training shared by the stages that fit a network: train (one worker or many) and tune
(one fit per trial). TensorFlow is imported lazily, so importing this module stays cheap."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipelines.adapters import modelcode
from pipelines.config import Workspace, read_settings
from pipelines.core.distribution import Cluster
from pipelines.errors import ConfigError


@dataclass(frozen=True)
class Hyper:
    """What a fit is given: the model.yaml training values, or a trial's values over them."""

    epochs: int
    batch_size: int
    learning_rate: float
    params: dict[str, Any]

    @classmethod
    def of(cls, ws: Workspace) -> Hyper:
        """The values model.yaml states."""
        cfg = ws.model.training
        return cls(cfg.epochs, cfg.batch_size, cfg.learning_rate, dict(cfg.params))


@dataclass(frozen=True)
class Fitted:
    """A fitted Keras model and its per-epoch curves (loss, accuracy or mae, val_*)."""

    model: Any
    curves: dict[str, list[float]]


def keras_verbosity() -> int:
    """A live progress bar on a terminal; one line per epoch in logs; silence in CI."""
    if read_settings().ci:
        return 0
    return 1 if sys.stdout.isatty() else 2


def import_tensorflow(threads: int) -> Any:
    """TensorFlow with ``threads`` threads per pool and deterministic ops."""
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


def build(
    ws: Workspace, keras: Any, input_shape: tuple[int, ...], hyper: Hyper, targets: NDArray[Any]
) -> Any:
    """The model's own network (its architecture file), compiled for its task.

    A classifier's network ends in one probability per class. A regressor's ends in one linear
    unit, which this wraps in a Rescaling by the training targets' standard deviation and mean:
    the network learns a standardised target (Adam's steps suit values near 0 and 1, whatever
    the target's unit), and the exported model, server included, answers in the target's own
    units with nothing to undo outside it."""
    arch = modelcode.load(ws, ws.model.training.architecture)
    regression = ws.model.task == "regression"
    outputs = 1 if regression else len(ws.model.classes)
    net = arch.build_model(keras, input_shape, outputs, hyper.params)
    shape = tuple(net.output_shape)
    if shape[1:] != (outputs,):
        raise ConfigError(
            f"{ws.model.training.architecture}'s build_model returned a network whose output "
            f"is {list(shape[1:])}; this {ws.model.task} model needs [{outputs}]",
            hint="end the network with Dense(num_outputs)"
            + (" and no activation (a linear output)" if regression else ", softmax"),
        )
    if not regression:
        net.compile(
            optimizer=keras.optimizers.Adam(learning_rate=hyper.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return net
    mean, std = float(np.mean(targets)), float(np.std(targets))
    inputs = keras.Input(shape=input_shape)
    scaled = keras.layers.Rescaling(scale=std if std > 0 else 1.0, offset=mean)(net(inputs))
    model = keras.Model(inputs, scaled)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hyper.learning_rate),
        loss="mse",
        metrics=["mae"],
    )
    return model


def fit(
    ws: Workspace,
    keras: Any,
    train: tuple[NDArray[np.float32], NDArray[Any]],
    validation: tuple[NDArray[np.float32], NDArray[Any]],
    hyper: Hyper,
    callbacks: Sequence[Any] = (),
) -> Fitted:
    """Seed, build and fit the network on ``train``, scoring ``validation`` after each epoch."""
    # Layer names ("conv2d_1", ...) come from per-process counters and end up in the TFLite
    # flatbuffer; a fresh session makes a second training in one process byte-identical.
    keras.backend.clear_session()
    keras.utils.set_random_seed(ws.model.training.seed)
    model = build(ws, keras, tuple(train[0].shape[1:]), hyper, train[1])
    history = model.fit(
        *train,
        validation_data=validation,
        epochs=hyper.epochs,
        batch_size=hyper.batch_size,
        shuffle=True,
        verbose=keras_verbosity(),
        callbacks=list(callbacks),
    )
    curves = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return Fitted(model, curves)


def import_tf_keras() -> Any:
    """tf_keras, the Keras 2 API kept for TensorFlow: the Keras that multi-worker fit needs.
    Keras 3 (``tf.keras`` in TF 2.21) fails in ``fit`` under MultiWorkerMirroredStrategy
    ("unsupported type PerReplica ... to a Tensor", keras#20585); tf_keras trains with the
    same architecture code, which receives the Keras module as a parameter."""
    import tf_keras  # type: ignore[import-untyped]  # no type information shipped

    return tf_keras


def fit_distributed(
    ws: Workspace,
    tf: Any,
    keras: Any,
    cluster: Cluster,
    train: tuple[NDArray[np.float32], NDArray[Any]],
    validation: tuple[NDArray[np.float32], NDArray[Any]],
    hyper: Hyper,
    progress: Callable[[str], None] = print,
) -> Fitted:
    """Fit as one worker of ``cluster`` with MultiWorkerMirroredStrategy: every worker runs
    this with the same data and seed; each step's gradients are all-reduced across them.

    batch_size is the global batch: tf.distribute shards each batch across the workers, so a
    worker computes batch_size / workers examples per step, steps per epoch are those of one
    worker, and the learning rate keeps its meaning. The returned model is a plain one (built
    outside the strategy, holding the trained weights), which saves and converts to TFLite as
    a single worker's does."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": list(cluster.workers)}),
        task_type="worker",
        task_id=cluster.index,
        rpc_layer="grpc",
    )
    comm = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=resolver, communication_options=comm
    )
    seed = ws.model.training.seed
    keras.utils.set_random_seed(seed)
    options = tf.data.Options()
    # Every worker reads the whole (small) arrays and keeps its share of each batch: the same
    # shuffle seed everywhere makes the shares disjoint.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def dataset(split: tuple[NDArray[np.float32], NDArray[Any]], shuffle: bool) -> Any:
        data = tf.data.Dataset.from_tensor_slices(split)
        if shuffle:
            data = data.shuffle(len(split[0]), seed=seed, reshuffle_each_iteration=True)
        return data.batch(hyper.batch_size).with_options(options)

    epochs, who = hyper.epochs, f"worker {cluster.index}/{cluster.size}"

    class EpochLine(keras.callbacks.Callback):  # type: ignore[misc]
        """One line per epoch and worker: which worker, which epoch, its scores."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            scores = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()))
            progress(f"{who}: epoch {epoch + 1}/{epochs}: {scores}")

    with strategy.scope():
        model = build(ws, keras, tuple(train[0].shape[1:]), hyper, train[1])
    history = model.fit(
        dataset(train, shuffle=True),
        validation_data=dataset(validation, shuffle=False),
        epochs=epochs,
        verbose=0,
        callbacks=[EpochLine()],
    )
    curves = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    plain = build(ws, keras, tuple(train[0].shape[1:]), hyper, train[1])
    plain.set_weights(model.get_weights())
    return Fitted(plain, curves)

"""The model at serving time: its signature and the LiteRT interpreter that runs it.

This module is shared by the pipeline (evaluate, gate) and the serving image, so that what the
pipeline measures is, line for line, what production executes. It depends on numpy and
``ai-edge-litert`` only: the image has neither TensorFlow nor the pipeline's dependencies.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Re-exported: the image shorthand's preprocessing lives with the rest of it, in features.py.
from pipelines.serving.features import ImageSchema, TableSchema, scale_features

__all__ = [
    "CLASSIFICATION",
    "MODEL_FILE",
    "REGRESSION",
    "SIGNATURE",
    "Runtime",
    "Signature",
    "load_model_dir",
    "same_value",
    "scale_features",
]

SIGNATURE = "signature.json"
MODEL_FILE = "model.tflite"
# model.yaml's task, as the signature carries it.
CLASSIFICATION = "classification"
REGRESSION = "regression"
# How far a served regression value may be from the one evaluate recorded, relative to the
# value (absolute below 1). Not exact equality: the value is LiteRT's float32, and XNNPACK picks
# its kernels by CPU (AVX2, AVX-512, NEON; with or without FMA), so the machine that serves may
# round the last bits differently from the one that evaluated. 1e-4 is about a thousand float32
# ulps (float32 resolves ~1.2e-7 of a value): far above that rounding, far below what another
# model's values differ by.
VALUE_TOLERANCE = 1e-4


def same_value(got: float, want: float) -> bool:
    """Whether a served value reproduces the recorded one, within VALUE_TOLERANCE (NaN never
    does)."""
    return abs(got - want) <= VALUE_TOLERANCE * max(1.0, abs(want))


@dataclass(frozen=True)
class Signature:
    """What a client sends and gets back, shipped beside the model in the image."""

    model: str
    feature_names: list[str]
    # The image shorthand's shape and range; None for a model of named features.
    image_shape: tuple[int, int] | None
    low: float | None
    high: float | None
    classes: list[int]
    model_sha256: str = ""
    # Examples with the predictions evaluate measured: /readyz is only green once the
    # runtime in this very process reproduces them.
    self_test_instances: list[list[Any]] = field(default_factory=list)
    self_test_classes: list[int] = field(default_factory=list)
    # sha256 of the reference profile shipped beside the model (reference.PROFILE); empty in
    # images packaged before releases had one.
    profile_sha256: str = ""
    # The named features (features.TableSchema.to_list); empty for the image shorthand. Self-
    # test instances of such a model are raw rows (numbers, strings, booleans, nulls).
    features: list[dict[str, Any]] = field(default_factory=list)
    # CLASSIFICATION or REGRESSION. A regressor has no classes and no self-test classes: its
    # self-test values are the predicted values evaluate recorded for the self-test instances.
    task: str = CLASSIFICATION
    self_test_values: list[float] = field(default_factory=list)

    @property
    def regressor(self) -> bool:
        """Whether the model predicts a value (one output) rather than scoring classes."""
        return self.task == REGRESSION

    @property
    def n_outputs(self) -> int:
        """The width of the model's output the signature promises: one score per class, or
        the one predicted value."""
        return 1 if self.regressor else len(self.classes)

    def schema(self) -> ImageSchema | TableSchema:
        """The feature schema, and with it the preprocessing (features.py)."""
        if self.features:
            return TableSchema.from_list(self.features)
        if self.image_shape is None or self.low is None or self.high is None:
            raise ValueError("the signature has neither named features nor an image shape")
        return ImageSchema(tuple(self.feature_names), self.image_shape, self.low, self.high)

    @property
    def n_features(self) -> int:
        """The number of input features."""
        return len(self.feature_names)

    def to_json(self) -> str:
        """The signature as JSON, as shipped in the image. Keys added since are left out at
        their defaults: an image model's has no ``features``, a classifier's no ``task`` and no
        ``self_test_values``, so their bytes, and their images' digests, do not change."""
        raw = asdict(self)
        for key in ("features", "self_test_values"):
            if not raw[key]:
                del raw[key]
        if raw["task"] == CLASSIFICATION:
            del raw["task"]
        return json.dumps(raw, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Signature:
        """Read a signature written by to_json."""
        raw = json.loads(text)
        if raw.get("image_shape") is not None:
            raw["image_shape"] = tuple(raw["image_shape"])
        return cls(**raw)


class Runtime:
    """One LiteRT interpreter, invoked one example at a time.

    Batch size 1 on purpose: with dynamic-range quantization the activation scales are computed
    per invoke, so a batched call could round differently from what evaluate measured.
    """

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter: Any = Interpreter(model_content=model, num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        # Bound once: attribute and dict look-ups per request are measurable at this scale.
        self._in_index = self._input["index"]
        self._out_index = self._output["index"]
        self._set = self._interpreter.set_tensor
        self._get = self._interpreter.get_tensor
        self._invoke = self._interpreter.invoke

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example (the batch dimension left out)."""
        return tuple(int(d) for d in self._input["shape"][1:])

    @property
    def n_outputs(self) -> int:
        """The width of the model's output: the number of classes it scores, 1 for a
        regressor's value."""
        return int(self._output["shape"][-1])

    def predict_one(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """The outputs of one example: class probabilities, or a regressor's one value."""
        self._set(self._in_index, x[np.newaxis, ...])
        self._invoke()
        out: NDArray[np.float32] = self._get(self._out_index)[0]
        return out

    def predict(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """The outputs of a batch, one row per example."""
        if x.shape[0] == 1:  # the usual online request: get_tensor already returns a copy
            self._set(self._in_index, x)
            self._invoke()
            one: NDArray[np.float32] = self._get(self._out_index)
            return one
        out = np.empty((x.shape[0], self.n_outputs), dtype=np.float32)
        for i in range(x.shape[0]):
            out[i] = self.predict_one(x[i])
        return out

    def timed_predict(
        self, x: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        """The outputs and each example's invoke latency in milliseconds."""
        out = np.empty((x.shape[0], self.n_outputs), dtype=np.float32)
        lat = np.empty(x.shape[0], dtype=np.float64)
        for i in range(x.shape[0]):
            start = time.perf_counter_ns()
            out[i] = self.predict_one(x[i])
            lat[i] = (time.perf_counter_ns() - start) / 1e6
        return out, lat


def load_model_dir(directory: Path) -> tuple[Signature, Runtime]:
    """The signature and runtime of the model in a folder."""
    signature = Signature.from_json((directory / SIGNATURE).read_text(encoding="utf-8"))
    return signature, Runtime((directory / MODEL_FILE).read_bytes())

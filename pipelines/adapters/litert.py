"""Score a TFLite artifact with the serving runtime (LiteRT), so that evaluate and the gate
measure exactly what the image executes, without TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipelines.core.gating import ModelIO, TensorSpec
from pipelines.errors import ConfigError
from pipelines.serving.runtime import Runtime

# Bytes 4..8 of every TFLite flatbuffer (the schema's file_identifier).
TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class Scored:
    """A model's outputs for a batch (a classifier's class probabilities, a regressor's one
    value) and the latency of each call."""

    probabilities: NDArray[np.float32]
    latencies_ms: NDArray[np.float64]

    @property
    def predictions(self) -> NDArray[np.int64]:
        """The most probable class of each example."""
        return np.asarray(self.probabilities.argmax(axis=1), dtype=np.int64)

    @property
    def values(self) -> NDArray[np.float64]:
        """A regressor's predicted value of each example (its one output)."""
        return np.asarray(self.probabilities[:, 0], dtype=np.float64)


class TFLiteModel:
    """A loaded TFLite model with the tensor specs it was checked against."""

    def __init__(self, runtime: Runtime, io: ModelIO) -> None:
        self.runtime = runtime
        self.io = io

    @classmethod
    def load(cls, path: Path, what: str = "model artifact") -> TFLiteModel:
        """Load a TFLite file; anything that is not one (missing, unreadable, empty, truncated,
        another format) is a usage error naming the file and what is wrong with it."""
        if path.is_dir():
            raise ConfigError(
                f"{what} {path} is a folder, not a file", hint="pass the .tflite file itself"
            )
        if not path.is_file():
            raise ConfigError(
                f"{what} {path} does not exist", hint="run `mlops train` first, or fix the path"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from exc
        if not data:
            raise ConfigError(
                f"{what} {path} is an empty file (0 bytes)",
                hint="the file was not written completely; fetch or export it again",
            )
        if data[4:8] != TFLITE_IDENTIFIER:
            raise ConfigError(
                f"{what} {path} is not a TFLite model (no {TFLITE_IDENTIFIER!r} "
                "identifier at byte 4)",
                hint="pass a .tflite file",
            )
        try:
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_content=data)
            io = ModelIO(
                tuple(_spec(d) for d in interpreter.get_input_details()),
                tuple(_spec(d) for d in interpreter.get_output_details()),
            )
            return cls(Runtime(data), io)
        except (ValueError, RuntimeError) as exc:
            # The flatbuffer verifier rejects a cut-off file before anything runs.
            raise ConfigError(
                f"{what} {path} is not a loadable TFLite model (truncated or corrupt?): {exc}"
            ) from exc

    def score(self, x: NDArray[np.float32]) -> Scored:
        """Score example by example (batch 1, as the server does), timing every invoke."""
        if tuple(x.shape[1:]) != self.runtime.input_shape:
            raise ConfigError(
                f"model expects inputs of shape {self.runtime.input_shape}, "
                f"the data has {tuple(x.shape[1:])}"
            )
        try:
            return Scored(*self.runtime.timed_predict(x))
        except (ValueError, RuntimeError) as exc:  # a tensor the checks above did not foresee
            raise ConfigError(f"the model cannot score this data: {exc}") from exc


def _spec(details: dict[str, Any]) -> TensorSpec:
    scales = details.get("quantization_parameters", {}).get("scales")
    quantized = scales is not None and len(scales) > 0
    return TensorSpec(
        shape=tuple(int(d) for d in details["shape"][1:]),
        dtype=np.dtype(details["dtype"]).name,
        quantized=quantized,
    )

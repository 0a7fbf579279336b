"""Run a TFLite artifact with LiteRT (``ai-edge-litert``): the same runtime the image ships,
so evaluate and the gate score exactly what production serves, without TensorFlow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipelines.errors import ConfigError


@dataclass(frozen=True)
class Scored:
    probabilities: NDArray[np.float32]
    latencies_ms: NDArray[np.float64]

    @property
    def predictions(self) -> NDArray[np.int64]:
        return np.asarray(self.probabilities.argmax(axis=1), dtype=np.int64)


class TFLiteModel:
    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter: Any = Interpreter(model_content=model, num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    @classmethod
    def load(cls, path: Path) -> TFLiteModel:
        if not path.is_file():
            raise ConfigError(f"model artifact {path} does not exist",
                              hint="run `mlops train` first, or fix the path")
        try:
            return cls(path.read_bytes())
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"{path} is not a loadable TFLite model: {exc}") from exc

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"][1:])

    def predict_one(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        self._interpreter.set_tensor(self._input["index"], x[np.newaxis, ...])
        self._interpreter.invoke()
        out: NDArray[np.float32] = self._interpreter.get_tensor(self._output["index"])[0]
        return out

    def score(self, x: NDArray[np.float32]) -> Scored:
        """Score example by example (batch 1, as the server does), timing every invoke."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(f"model expects inputs of shape {self.input_shape}, "
                              f"the data has {tuple(x.shape[1:])}")
        probs = np.empty((x.shape[0], int(self._output["shape"][-1])), dtype=np.float32)
        lat = np.empty(x.shape[0], dtype=np.float64)
        for i in range(x.shape[0]):
            start = time.perf_counter_ns()
            probs[i] = self.predict_one(x[i])
            lat[i] = (time.perf_counter_ns() - start) / 1e6
        return Scored(probs, lat)

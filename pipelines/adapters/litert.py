"""Score a TFLite artifact with the serving runtime (LiteRT), so that evaluate and the gate
measure exactly what the image executes, without TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pipelines.errors import ConfigError
from pipelines.serving.runtime import Runtime


@dataclass(frozen=True)
class Scored:
    probabilities: NDArray[np.float32]
    latencies_ms: NDArray[np.float64]

    @property
    def predictions(self) -> NDArray[np.int64]:
        return np.asarray(self.probabilities.argmax(axis=1), dtype=np.int64)


class TFLiteModel:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @classmethod
    def load(cls, path: Path) -> TFLiteModel:
        if not path.is_file():
            raise ConfigError(f"model artifact {path} does not exist",
                              hint="run `mlops train` first, or fix the path")
        try:
            return cls(Runtime(path.read_bytes()))
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"{path} is not a loadable TFLite model: {exc}") from exc

    def score(self, x: NDArray[np.float32]) -> Scored:
        """Score example by example (batch 1, as the server does), timing every invoke."""
        if tuple(x.shape[1:]) != self.runtime.input_shape:
            raise ConfigError(f"model expects inputs of shape {self.runtime.input_shape}, "
                              f"the data has {tuple(x.shape[1:])}")
        return Scored(*self.runtime.timed_predict(x))

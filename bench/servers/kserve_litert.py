"""KServe's Python ModelServer serving an image-shorthand model (digits) with LiteRT: a small
``kserve.Model`` subclass running the same TFLite file through the same runtime class and
preprocessing as our server (``pipelines.serving.runtime``), so only the serving stack differs.

It answers KServe's v1 protocol, ``POST /v1/models/<name>:predict`` with ``{"instances": [[...]]}``,
with our server's answer (each instance's class and probabilities). Its input check is the one
a custom KServe model would write (shape and range, vectorised), lighter than ours.

Runs in the separate venv of ``serving_vs_kserve.py`` (kserve is not one of the project's
dependencies), with this checkout on PYTHONPATH.

Usage: python kserve_litert.py --model_dir DIR --model_name digits --http_port PORT
       [any other kserve.model_server argument, e.g. --workers 1 --enable_grpc false]
"""

import argparse
from pathlib import Path
from typing import Any

import kserve
import numpy as np
from kserve.errors import InvalidInput

from pipelines.serving.runtime import load_model_dir, scale_features


class LiteRTModel(kserve.Model):
    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self) -> bool:
        self.signature, self.runtime = load_model_dir(self.model_dir)
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Any = None) -> dict[str, Any]:
        sig = self.signature
        x = np.asarray(payload["instances"], dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != sig.n_features:
            raise InvalidInput(f"instances must be rows of {sig.n_features} numbers")
        if x.min() < sig.low or x.max() > sig.high:
            raise InvalidInput(f"values must lie in [{sig.low}, {sig.high}]")
        probs = self.runtime.predict(scale_features(x, sig.low, sig.high, sig.image_shape))
        return {
            "predictions": [
                {"class": sig.classes[k], "probabilities": probs[i].tolist()}
                for i, k in enumerate(probs.argmax(axis=1).tolist())
            ]
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", type=Path, required=True)
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([LiteRTModel(args.model_name, args.model_dir)])

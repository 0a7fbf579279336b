"""The floor: our server stack (Starlette, uvicorn with httptools, our metrics and logging
middleware) answering a constant prediction after reading the body, with no model at all.

With WORK, the constant endpoint also does one piece of the model path (and still answers the
constant), so `serving_throughput.py --breakdown` can show what each piece costs under load:
  none     the floor itself
  spin40   40 us of busy-waiting: the cost of any CPU work of that length, in the server
  parse    JSON decoding, validation and scaling, as the model server does them
  invoke   one LiteRT invoke on a fixed input

Usage: python constant.py MODEL_DIR PORT [WORK]
"""

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipelines.serving.app import ServerState, create_app, json_response, parse_instances
from pipelines.serving.runtime import load_model_dir, scale_features
from pipelines.serving.settings import Settings
from pipelines.serving.telemetry import configure_logging

ANSWER = {"predictions": [{"class": 0, "probabilities": [1.0] + [0.0] * 9}]}


def pieces(model_dir: Path) -> dict[str, Callable[[bytes], object]]:
    sig, runtime = load_model_dir(model_dir)
    fixed = np.zeros((1, *runtime.input_shape), dtype=np.float32)

    def spin40(_: bytes) -> None:
        end = time.perf_counter() + 40e-6
        while time.perf_counter() < end:
            pass

    def parse(body: bytes) -> object:
        raw = parse_instances(orjson.loads(body), sig, 64)
        return scale_features(raw, sig.low, sig.high, sig.image_shape)

    return {
        "none": lambda _: None,
        "spin40": spin40,
        "parse": parse,
        "invoke": lambda _: runtime.predict(fixed),
    }


if __name__ == "__main__":
    settings = Settings(model_dir=Path(sys.argv[1]), port=int(sys.argv[2]))
    work = pieces(settings.model_dir)[sys.argv[3] if len(sys.argv) > 3 else "none"]

    async def constant(request: Request) -> Response:
        work(await request.body())
        return json_response(ANSWER)

    configure_logging("INFO")
    app = create_app(settings, ServerState(settings))
    app.router.routes.insert(0, Route("/v1/models/digits:predict", constant, methods=["POST"]))
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_config=None, access_log=False)

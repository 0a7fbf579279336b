"""The floor: our server stack (Starlette, uvicorn with httptools, our metrics and logging
middleware) answering a constant prediction after reading the body, with no model at all.

Usage: python constant.py MODEL_DIR PORT
"""

import sys
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipelines.serving.app import ServerState, create_app, json_response
from pipelines.serving.settings import Settings
from pipelines.serving.telemetry import configure_logging

ANSWER = {"predictions": [{"class": 0, "probabilities": [1.0] + [0.0] * 9}]}


async def constant(request: Request) -> Response:
    await request.body()
    return json_response(ANSWER)


if __name__ == "__main__":
    settings = Settings(model_dir=Path(sys.argv[1]), port=int(sys.argv[2]))
    configure_logging("INFO")
    app = create_app(settings, ServerState(settings))
    app.router.routes.insert(0, Route("/v1/models/digits:predict", constant, methods=["POST"]))
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_config=None, access_log=False)

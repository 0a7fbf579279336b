"""Entry point of the serving image: ``python -m pipelines.serving``.

Configured only by ``MLOPS_*`` environment variables (see settings.py). On SIGTERM the server
turns /readyz red, stops accepting connections, and lets requests in flight finish for up to
``MLOPS_DRAIN_SECONDS`` before it exits.
"""

from __future__ import annotations

import json
import sys
from types import FrameType

import uvicorn

from pipelines.serving.app import ServerState, create_app
from pipelines.serving.settings import Settings, SettingsError
from pipelines.serving.telemetry import configure_logging


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Readiness goes red first, so a load balancer still polling stops sending traffic.
        self.state.draining = True
        super().handle_exit(sig, frame)


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(json.dumps({"level": "error", "msg": f"bad configuration: {exc}"}), flush=True)
        return 2
    configure_logging(settings.log_level)
    state = ServerState(settings)
    app = create_app(settings, state)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        timeout_graceful_shutdown=settings.drain_seconds, server_header=False,
        proxy_headers=False, lifespan="on",
    )
    DrainingServer(config, state).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

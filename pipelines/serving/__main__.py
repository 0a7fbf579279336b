"""Entry point of the serving image: ``python -m pipelines.serving``.

Configured only by ``MLOPS_*`` environment variables (see settings.py). On SIGTERM the server
turns /readyz red at once but goes on serving everything, new connections included, for
``MLOPS_SHUTDOWN_DELAY_SECONDS``: the pod can still be in a Service's endpoints until the
removal has propagated, and a request sent there must not get a 503. Every response in that
time carries ``Connection: close``, so keep-alive clients reconnect, through the Service, to a
pod that stays. Then it stops accepting, closes idle connections (a client that sends on one
at that moment sees the connection close and retries) and lets requests in flight finish for
up to ``MLOPS_DRAIN_SECONDS``. A second SIGTERM, or SIGINT, skips the delay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn

from pipelines.serving.app import ServerState, create_app
from pipelines.serving.connections import (
    SWEEP_EVERY_TICKS,
    ConnectionStats,
    Limits,
    RateLimitedLoopErrors,
    protocol_class,
    sweep,
)
from pipelines.serving.contract import Env
from pipelines.serving.settings import Settings, SettingsError
from pipelines.serving.telemetry import configure_logging

log = logging.getLogger("mlops.serving")
# File descriptors the process needs besides connections: the model, stdio, the listening
# socket, epoll, the native runtime's own.
RESERVED_FDS = 32


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM: readiness goes red, serving goes on, then stops."""

    def __init__(self, config: uvicorn.Config, state: ServerState, stats: ConnectionStats) -> None:
        super().__init__(config)
        self.state = state
        self.stats = stats
        self.delay = state.settings.shutdown_delay
        self._exit_at: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Install the rate-limited loop error handler, then start as uvicorn does."""
        asyncio.get_running_loop().set_exception_handler(RateLimitedLoopErrors(self.stats))
        await super().startup(sockets)

    async def on_tick(self, counter: int) -> bool:
        """Sweep expired connections, and start the graceful shutdown once the delay is over."""
        if counter % SWEEP_EVERY_TICKS == 0:
            sweep(self.server_state.connections, self.stats)
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self._exit_at = None
            super().handle_exit(signal.SIGTERM, None)  # uvicorn's graceful shutdown from here
        return await super().on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Mark the server draining; a first SIGTERM only schedules the exit, after the delay."""
        # Readiness goes red first, so a load balancer still polling stops sending traffic.
        self.state.draining = True
        if sig == signal.SIGTERM and self.delay and self._exit_at is None and not self.should_exit:
            # A signal handler: only note the time; the tick (every 0.1 s) acts on it.
            self._exit_at = time.monotonic() + self.delay
            return
        self._exit_at = None
        super().handle_exit(sig, frame)


def connection_limit(wanted: int) -> int:
    """``wanted``, or less if the open-files limit cannot hold that many connections.

    The soft limit is raised toward the hard one first (containers often start with a soft
    limit of 1024); past the limit, accept() fails with EMFILE instead of answering 503."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    fitted = max(1, soft - RESERVED_FDS)
    log.warning(
        "connection limit lowered to fit the open-files limit",
        extra={
            "fields": {
                Env.MAX_CONNECTIONS.value: wanted,
                "open_files_limit": soft,
                "max_connections": fitted,
                "hint": f"raise the open-files limit (ulimit -n) or lower {Env.MAX_CONNECTIONS}",
            }
        },
    )
    return fitted


def main() -> int:
    """Serve the model until stopped; the process's exit code (2 for bad configuration)."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(json.dumps({"level": "error", "msg": f"bad configuration: {exc}"}), flush=True)
        return 2
    configure_logging(settings.log_level)
    stats = ConnectionStats()
    state = ServerState(settings, connection_stats=stats)
    app = create_app(settings, state)
    limits = Limits(
        settings.header_timeout,
        settings.body_timeout,
        settings.keepalive_timeout,
        connection_limit(settings.max_connections),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.drain_seconds,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        http=protocol_class(limits, stats),
        timeout_keep_alive=settings.keepalive_timeout,
        ws="none",  # no WebSocket routes: an upgraded connection would escape the deadlines
    )
    DrainingServer(config, state, stats).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

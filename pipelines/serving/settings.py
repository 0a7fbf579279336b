"""Server settings, read only from environment variables (twelve-factor, and what Kubernetes
sets). Their names are the contract's (contract.Env)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.serving import contract
from pipelines.serving.contract import Env


class SettingsError(ValueError):
    """A variable is malformed; the message names it and what is allowed."""


@dataclass(frozen=True)
class Settings:
    """The server's settings, read from the environment the Deployment sets."""

    model_dir: Path = Path(contract.MODEL_DIR)
    host: str = "0.0.0.0"  # noqa: S104 - a container serves on all of its interfaces
    port: int = contract.PORT
    release: str = "unknown"
    color: str = "none"
    max_batch: int = 256
    max_body_bytes: int = 1_048_576
    # After SIGTERM: keep serving for shutdown_delay while readiness propagates, then give
    # requests in flight up to drain_seconds. The Deployment's terminationGracePeriodSeconds
    # (35) must hold its 5 s preStop sleep + these + a margin: the policy rule shutdown-budget.
    shutdown_delay: int = 5
    drain_seconds: int = 20
    # Slow and idle clients (connections.py). The head of a request must arrive within
    # header_timeout, its body within body_timeout (1 MiB at 35 KB/s); an idle keep-alive
    # connection is closed after keepalive_timeout, longer than a pooled client's usual pause.
    header_timeout: int = 10
    body_timeout: int = 30
    keepalive_timeout: int = 30
    # Connections beyond this get a 503 and are closed; an idle one costs about 10 KB.
    max_connections: int = 2048
    # "errors" logs every 4xx/5xx answer; "all" every request (costs ~25% throughput at
    # thousands of requests a second; the metrics already count every request).
    access_log: str = "errors"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables; an unset or empty variable keeps its default."""
        env = os.environ if env is None else env

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not an integer") from None
            if not low <= value <= high:
                raise SettingsError(f"{name}={value} is outside [{low}, {high}]")
            return value

        access = env.get(Env.ACCESS_LOG, cls.access_log).lower()
        if access not in ("all", "errors", "none"):
            raise SettingsError(f"{Env.ACCESS_LOG}={access!r}: use all, errors or none")
        level = env.get(Env.LOG_LEVEL, "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"{Env.LOG_LEVEL}={level!r}: use DEBUG, INFO, WARNING or ERROR")
        return cls(
            model_dir=Path(env.get(Env.MODEL_DIR, str(cls.model_dir))),
            host=env.get(Env.HOST, cls.host),
            port=integer(Env.PORT, cls.port, 1, 65535),
            release=env.get(Env.RELEASE_ID, cls.release),
            color=env.get(Env.COLOR, cls.color),
            max_batch=integer(Env.MAX_BATCH, cls.max_batch, 1, 100_000),
            max_body_bytes=integer(Env.MAX_BODY_BYTES, cls.max_body_bytes, 256, 1 << 30),
            shutdown_delay=integer(Env.SHUTDOWN_DELAY_SECONDS, cls.shutdown_delay, 0, 3600),
            drain_seconds=integer(Env.DRAIN_SECONDS, cls.drain_seconds, 0, 3600),
            header_timeout=integer(Env.HEADER_TIMEOUT_SECONDS, cls.header_timeout, 1, 3600),
            body_timeout=integer(Env.BODY_TIMEOUT_SECONDS, cls.body_timeout, 1, 3600),
            keepalive_timeout=integer(
                Env.KEEPALIVE_TIMEOUT_SECONDS, cls.keepalive_timeout, 1, 3600
            ),
            max_connections=integer(Env.MAX_CONNECTIONS, cls.max_connections, 1, 1_000_000),
            access_log=access,
            log_level=level,
        )

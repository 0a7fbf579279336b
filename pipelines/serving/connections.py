"""Connection-level defences: read timeouts, a connection limit, rate-limited accept errors.

uvicorn 0.54 closes idle keep-alive connections, but has no timeout for reading a request's
head or body (a client dribbling one header byte a second holds its connection forever), and
its ``limit_concurrency`` answers 503 to every request once the limit is reached, those of
clients already connected included. This module extends its httptools protocol by the least it
takes:

- every connection has a phase and a deadline: the request head must arrive within
  ``header_timeout`` (counted from the connection, or from the first byte after a keep-alive
  pause), its body within ``body_timeout`` of the head; an idle keep-alive connection is
  closed after ``keepalive_timeout`` by uvicorn's timer, and one that sends blank lines to look
  busy by the header timeout. One sweep every 0.5 s from the server's tick checks the
  deadlines: no timer per request, and no clock read for a request that arrives in one piece.
- a connection accepted while ``max_connections`` are open is refused at once, without
  reaching the application: it gets a 503 with ``Connection: close`` and ``Retry-After: 1``,
  written as soon as it is accepted, and is closed when the client closes (or after a second).
  Clients connected before are served as usual.
- a request head larger than ``MAX_HEAD_BYTES`` gets a 431 and the connection is closed.
- ``RateLimitedLoopErrors`` replaces asyncio's exception handler: when file descriptors run
  out, CPython's accept loop reports EMFILE once per queued connection, thousands of log lines
  a second; it logs the first of a kind, then one line per interval with the number it held
  back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("mlops.serving")

# Set in a request's ASGI scope when the body timeout closed its connection, so the app counts
# the request as 408 rather than as a client that went away (499).
TIMED_OUT = "mlops.timed_out"
MAX_HEAD_BYTES = 64 * 1024
LINGER = 1.0  # seconds a refused connection is drained before it is closed
SWEEP_EVERY_TICKS = 5  # uvicorn ticks every 0.1 s: deadlines are checked every 0.5 s

IDLE, HEAD, BODY, APP, LINGER_PHASE = "idle", "head", "body", "app", "linger"  # IDLE: stats
_now = time.monotonic  # what asyncio's loop.time() returns, without its extra call


@dataclass(frozen=True)
class Limits:
    """Connection deadlines (seconds) and the number of connections accepted at once."""

    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int


@dataclass
class ConnectionStats:
    """Counters for /metrics; plain integers, bumped on the event loop thread only."""

    refused: int = 0
    heads_too_large: int = 0
    accept_errors: int = 0
    timeouts: dict[str, int] = field(default_factory=lambda: {HEAD: 0, BODY: 0, IDLE: 0})
    open: int = 0


def _response(status: bytes, message: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps({"error": message})
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines, a connection limit and a head limit.

    ``limits`` and ``stats`` are set on a subclass by ``protocol_class``."""

    limits: ClassVar[Limits]
    stats: ClassVar[ConnectionStats]
    _phase: str
    _deadline: float
    _head_bytes: int

    # One override runs per request (data_received; the parser callbacks are uvicorn's own),
    # and a request that arrives in one piece reads no clock: each Python frame saved is
    # measurable at thousands of requests a second. Idle keep-alive connections are closed
    # by uvicorn's own timer (timeout_keep_alive).

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse the connection with 503 if over the limit, else start its header deadline."""
        HttpToolsProtocol.connection_made(self, transport)
        self._head_bytes = 0
        if len(self.connections) > self.limits.max_connections:
            self.stats.refused += 1
            self._refuse(
                _response(
                    b"503 Service Unavailable",
                    f"more than {self.limits.max_connections} open "
                    "connections: retry, another replica may have room",
                    b"retry-after: 1\r\n",
                )
            )
            return
        self._phase, self._deadline = HEAD, _now() + self.limits.header_timeout

    def _refuse(self, response: bytes) -> None:
        """Answer, then read and drop what the client still sends until it closes, for at most
        LINGER: closing with unread data would send a reset, and a reset can make the client's
        TCP stack discard the answer before it is read (RFC 9112, 9.6)."""
        self._phase, self._deadline = LINGER_PHASE, _now() + LINGER
        self.transport.write(response)
        try:
            self.transport.write_eof()
        except OSError:  # the client is already gone (ENOTCONN)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Feed the parser, and move the deadline on when a request head completes."""
        phase = self._phase
        if phase is LINGER_PHASE:
            return
        cycle = self.cycle
        HttpToolsProtocol.data_received(self, data)
        if self.cycle is not cycle:  # a request head completed in this chunk
            self._head_bytes = 0
            if self.cycle.more_body:
                self._phase, self._deadline = BODY, _now() + self.limits.body_timeout
            else:  # the application's time is not the client's fault: no deadline
                self._phase, self._deadline = APP, math.inf
            return
        if phase is BODY:
            if not cycle.more_body:
                self._phase, self._deadline = APP, math.inf
            return
        if phase is APP:
            if not cycle.response_complete:
                return
            # The first bytes after a response (blank lines included): uvicorn's keep-alive
            # timer stops on any byte, so from here the head must come within the timeout.
            self._phase, self._deadline = HEAD, _now() + self.limits.header_timeout
        if self._phase is HEAD:  # the head is still incomplete after this chunk
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.stats.heads_too_large += 1
                self._refuse(
                    _response(
                        b"431 Request Header Fields Too Large",
                        f"the request line and headers exceed {MAX_HEAD_BYTES} bytes",
                    )
                )

    def timeout_keep_alive_handler(self) -> None:
        """Count an idle connection's timeout, then close it as uvicorn does."""
        if not self.transport.is_closing():
            self.stats.timeouts[IDLE] += 1
        super().timeout_keep_alive_handler()

    def expire(self) -> None:
        """Called by the sweep once the deadline has passed."""
        if self.transport.is_closing():
            return
        phase = self._phase
        if phase in self.stats.timeouts:
            self.stats.timeouts[phase] += 1
        cycle = self.cycle
        if phase is BODY and not cycle.more_body:  # complete after all: the app's turn
            self._phase, self._deadline = APP, math.inf
            return
        if phase is BODY and not cycle.response_started:
            cycle.scope[TIMED_OUT] = True  # type: ignore[literal-required]
            self.transport.write(
                _response(
                    b"408 Request Timeout",
                    f"the request body did not arrive within {self.limits.body_timeout:g} s",
                )
            )
        elif phase is HEAD and self._head_bytes:
            self.transport.write(
                _response(
                    b"408 Request Timeout",
                    f"the request head did not arrive within {self.limits.header_timeout:g} s",
                )
            )
        self.transport.close()


def protocol_class(limits: Limits, stats: ConnectionStats) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates, bound to these limits and counters."""
    return type(
        "GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits, "stats": stats}
    )


def sweep(connections: Iterable[Any], stats: ConnectionStats) -> None:
    """Close the connections whose deadline has passed; called from the server's tick."""
    now = _now()
    open_ = 0
    for connection in list(connections):
        open_ += 1
        if isinstance(connection, GuardedHttpToolsProtocol) and connection._deadline <= now:
            connection.expire()
    stats.open = open_


class RateLimitedLoopErrors:
    """asyncio's exception handler, at most one line per kind of error per ``interval``."""

    def __init__(self, stats: ConnectionStats, interval: float = 10.0) -> None:
        self.stats = stats
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Count accept errors; log the error unless its kind was logged within the interval."""
        kind = str(context.get("message", ""))
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in kind:
            self.stats.accept_errors += 1
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if isinstance(exc, OSError) and "accept" in kind:
            log.error(
                "cannot accept connections",
                extra={
                    "fields": {
                        "error": str(exc),
                        "held_back": held,
                        "interval_s": self.interval,
                        "hint": "file descriptors ran out: lower MLOPS_MAX_CONNECTIONS or "
                        "raise the open-files limit (ulimit -n)",
                    }
                },
            )
            return
        if held:
            log.error(
                "event loop errors held back",
                extra={"fields": {"kind": kind, "held_back": held, "interval_s": self.interval}},
            )
        loop.default_exception_handler(context)


class ConnectionCollector(Collector):
    """The counters above as Prometheus series with the server's identity labels."""

    def __init__(self, stats: ConnectionStats, label_names: list[str], labels: list[str]) -> None:
        self.stats = stats
        self.names = label_names
        self.labels = labels

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """The connection gauges and counters, as of the last sweep."""
        s = self.stats
        gauge = GaugeMetricFamily(
            "mlops_connections_open",
            "Open HTTP connections, as of the last sweep (every 0.5 s).",
            labels=self.names,
        )
        gauge.add_metric(self.labels, s.open)
        yield gauge
        for name, doc, value in (
            (
                "mlops_connections_refused",
                "Connections refused with 503: too many open.",
                s.refused,
            ),
            (
                "mlops_request_heads_too_large",
                "Connections closed with 431: head too large.",
                s.heads_too_large,
            ),
            (
                "mlops_accept_errors",
                "Failed accept() calls (e.g. out of file descriptors).",
                s.accept_errors,
            ),
        ):
            counter = CounterMetricFamily(name, doc, labels=self.names)
            counter.add_metric(self.labels, value)
            yield counter
        timeouts = CounterMetricFamily(
            "mlops_connection_timeouts",
            "Connections closed by a read timeout, by phase (head, body, idle).",
            labels=[*self.names, "phase"],
        )
        for phase, value in sorted(s.timeouts.items()):
            timeouts.add_metric([*self.labels, phase], value)
        yield timeouts

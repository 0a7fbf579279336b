"""Structured logs (one JSON object per line) and Prometheus metrics for the model server."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# Sub-millisecond buckets: a LiteRT invoke of a small model takes microseconds, so the default
# buckets (5 ms and up) would put every request in the first one.
LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
LABELS = ("model", "release", "color")


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line, with any structured fields merged in."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: str) -> None:
    """Log JSON lines to stdout at level, uvicorn's loggers included."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own loggers propagate to ours, so its start-up and error lines are JSON too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # we log requests ourselves


@contextlib.contextmanager
def native_stderr_as_log(logger: logging.Logger) -> Iterator[None]:
    """Turn what native code writes to file descriptor 2 meanwhile into JSON log lines.

    LiteRT's C++ runtime prints plain text ("Created TensorFlow Lite XNNPACK delegate for
    CPU.") straight to fd 2 when a model loads, past Python's logging; a log pipeline that
    expects one JSON object per line would choke on it. A thread drains the pipe, so a
    chatty library can never fill it and block.
    """
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the last write end: the reader sees end of file
        os.close(saved)
        reader.join()
        os.close(read_end)
        for line in b"".join(chunks).decode(errors="replace").splitlines():
            if line.strip():
                logger.info(line.strip(), extra={"fields": {"source": "native stderr"}})


class InputStatistics(Collector):
    """Running per-feature sums of the instances served, for drift alerts.

    ``rate(sum) / rate(count)`` over a window is the live mean of a feature; compared with
    ``reference_stats.json`` from validate it shows drift. Kept in numpy and exported at scrape
    time, because 64 prometheus counters per instance would cost more than the prediction.
    """

    def __init__(self, feature_names: list[str], labels: tuple[str, str, str]) -> None:
        self._names = feature_names
        self._labels = list(labels)
        self._lock = threading.Lock()
        self._count = 0
        self._sum = np.zeros(len(feature_names), dtype=np.float64)
        self._squares = np.zeros(len(feature_names), dtype=np.float64)
        self._pending: list[NDArray[np.float64]] = []

    # Requests are folded into the sums in blocks: one numpy reduction per block instead of three
    # per request keeps the cost per prediction under a microsecond.
    BLOCK = 256

    def observe(self, raw: NDArray[np.float64]) -> None:
        """Add a batch of instances; they are folded into the sums in blocks."""
        with self._lock:
            self._pending.append(raw)
            if len(self._pending) >= self.BLOCK:
                self._fold()

    def _fold(self) -> None:
        if self._pending:
            block = np.concatenate(self._pending)
            self._pending.clear()
            self._count += block.shape[0]
            self._sum += block.sum(axis=0)
            self._squares += np.square(block).sum(axis=0)

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The instance count and per-feature sums and squares, as counters."""
        with self._lock:
            self._fold()
            count, sums, squares = self._count, self._sum.copy(), self._squares.copy()
        label_names = [*LABELS, "feature"]
        total = CounterMetricFamily(
            "mlops_input_instances", "Instances accepted for prediction.", labels=list(LABELS)
        )
        total.add_metric(self._labels, count)
        yield total
        s = CounterMetricFamily(
            "mlops_input_feature_sum",
            "Sum of each input feature over accepted instances.",
            labels=label_names,
        )
        q = CounterMetricFamily(
            "mlops_input_feature_squares",
            "Sum of squares of each input feature over accepted instances.",
            labels=label_names,
        )
        for i, name in enumerate(self._names):
            s.add_metric([*self._labels, name], float(sums[i]))
            q.add_metric([*self._labels, name], float(squares[i]))
        yield s
        yield q


class Metrics:
    """Every series carries model, release and color, so blue and green can be told apart."""

    def __init__(
        self, model: str, release: str, color: str, feature_names: list[str], classes: list[int]
    ) -> None:
        labels = (model, release, color)
        self.registry = CollectorRegistry(auto_describe=True)
        self._latency = Histogram(
            "mlops_request_duration_seconds",
            "Time to answer a request, by route.",
            [*LABELS, "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._requests = Counter(
            "mlops_requests",
            "Requests answered, by route and HTTP status code.",
            [*LABELS, "route", "code"],
            registry=self.registry,
        )
        predictions = Counter(
            "mlops_predictions",
            "Predictions returned, by predicted class.",
            [*LABELS, "class"],
            registry=self.registry,
        )
        self._by_class = [predictions.labels(*labels, str(c)) for c in classes]
        self.ready = Gauge(
            "mlops_model_ready",
            "1 once the model loaded and self-tested.",
            list(LABELS),
            registry=self.registry,
        ).labels(*labels)
        self.info = Gauge(
            "mlops_model_info",
            "The model this process serves (always 1).",
            [*LABELS, "model_sha256"],
            registry=self.registry,
        )
        self.inputs = InputStatistics(feature_names, labels)
        self.registry.register(self.inputs)
        self._labels = labels
        # Children are cached: labels() costs a dict lookup and a lock on every call.
        self._latency_children: dict[str, Any] = {}
        self._request_children: dict[tuple[str, int], Any] = {}

    def request(self, route: str, code: int, seconds: float) -> None:
        """Record one request's latency and status code, by route."""
        child = self._latency_children.get(route)
        if child is None:
            child = self._latency_children[route] = self._latency.labels(*self._labels, route)
        child.observe(seconds)
        key = (route, code)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self._requests.labels(
                *self._labels, route, str(code)
            )
        counter.inc()

    def predicted(self, class_indices: NDArray[np.int64]) -> None:
        """Count the predicted classes of a batch."""
        for i in class_indices.tolist():
            self._by_class[i].inc()

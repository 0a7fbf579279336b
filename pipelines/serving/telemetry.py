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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from pipelines.serving.contract import LABELS, Metric
from pipelines.serving.reference import Reference

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
# Anomaly-score buckets as multiples of the release's threshold epsilon: the histogram says how
# far past (or short of) it traffic is, with the same few series for every release.
ANOMALY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0)


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
    """Running per-feature sums of the instances served, for drift alerts, and their anomaly
    scores when the release has a reference profile.

    ``rate(sum) / rate(count)`` over a window is the live mean of a feature; compared with the
    reference gauges it shows drift. Kept in numpy and exported at scrape time, because 64
    prometheus counters per instance would cost more than the prediction. The anomaly scores
    are computed in the same blocks, one matrix product per block: every scrape folds what is
    pending first, so the exported counts are exact, and a request pays only a list append.
    """

    # Requests are folded into the sums in blocks: one numpy reduction per block instead of three
    # per request keeps the cost per prediction under a microsecond.
    BLOCK = 256

    def __init__(
        self,
        feature_names: list[str],
        labels: tuple[str, str, str],
        reference: Reference | None = None,
    ) -> None:
        self._names = feature_names
        self._labels = list(labels)
        self._reference = reference
        self._lock = threading.Lock()
        self._count = 0
        self._sum = np.zeros(len(feature_names), dtype=np.float64)
        self._squares = np.zeros(len(feature_names), dtype=np.float64)
        self._pending: list[NDArray[np.float64]] = []
        eps = reference.anomaly_threshold if reference else 1.0
        self._bounds = np.array([eps * b for b in ANOMALY_BUCKETS])
        self._buckets = np.zeros(len(ANOMALY_BUCKETS) + 1, dtype=np.int64)  # the last is +Inf
        self._score_sum = 0.0
        self._anomalies = 0

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
            if self._reference is not None:
                self._score(self._reference.scores(block))

    def _score(self, scores: NDArray[np.float64]) -> None:
        # side="left": a score equal to a bound belongs to that bucket (Prometheus' "le").
        where = np.searchsorted(self._bounds, scores, side="left")
        self._buckets += np.bincount(where, minlength=self._buckets.shape[0])
        self._score_sum += float(scores.sum())
        assert self._reference is not None
        self._anomalies += int(np.count_nonzero(scores > self._reference.anomaly_threshold))

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        """The input sums and the anomaly series, after folding in what is waiting."""
        with self._lock:
            self._fold()
            count, sums, squares = self._count, self._sum.copy(), self._squares.copy()
            buckets, score_sum, anomalies = self._buckets.copy(), self._score_sum, self._anomalies
        yield from self._input_families(count, sums, squares)
        if self._reference is not None:
            yield from self._anomaly_families(buckets, score_sum, anomalies)

    def _input_families(
        self, count: int, sums: NDArray[np.float64], squares: NDArray[np.float64]
    ) -> Iterator[CounterMetricFamily]:
        label_names = [*LABELS, "feature"]
        total = CounterMetricFamily(
            Metric.INSTANCES, "Instances accepted for prediction.", labels=list(LABELS)
        )
        total.add_metric(self._labels, count)
        yield total
        s = CounterMetricFamily(
            Metric.FEATURE_SUM,
            "Sum of each input feature over accepted instances.",
            labels=label_names,
        )
        q = CounterMetricFamily(
            Metric.FEATURE_SQUARES,
            "Sum of squares of each input feature over accepted instances.",
            labels=label_names,
        )
        for i, name in enumerate(self._names):
            s.add_metric([*self._labels, name], float(sums[i]))
            q.add_metric([*self._labels, name], float(squares[i]))
        yield s
        yield q

    def _anomaly_families(
        self, buckets: NDArray[np.int64], score_sum: float, anomalies: int
    ) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        histogram = HistogramMetricFamily(
            Metric.ANOMALY_SCORE,
            "Each instance's anomaly score: its Mahalanobis distance from the reference.",
            labels=list(LABELS),
        )
        cumulative = np.cumsum(buckets).tolist()
        bounds = [repr(float(b)) for b in self._bounds] + ["+Inf"]
        histogram.add_metric(self._labels, list(zip(bounds, cumulative, strict=True)), score_sum)
        yield histogram
        counter = CounterMetricFamily(
            Metric.ANOMALIES,
            "Instances whose anomaly score exceeded the reference threshold.",
            labels=list(LABELS),
        )
        counter.add_metric(self._labels, anomalies)
        yield counter


class ReferenceGauges(Collector):
    """The release's reference profile as gauges, so the rendered rules and alerts compare live
    signals with whatever release a pod serves, with no per-release rule. Constant: built once
    at load, a few series per feature and class."""

    def __init__(self, reference: Reference, labels: tuple[str, str, str]) -> None:
        self._families = list(_reference_families(reference, list(labels)))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The reference gauges, built once: they never change for a process."""
        yield from self._families


def _gauge(
    name: Metric, doc: str, labels: list[str], values: dict[str, float], extra: str = ""
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[*LABELS, extra] if extra else list(LABELS))
    for key, value in values.items():
        family.add_metric([*labels, key] if extra else labels, value)
    return family


def _reference_families(ref: Reference, labels: list[str]) -> Iterator[GaugeMetricFamily]:
    yield _gauge(
        Metric.REFERENCE_FEATURE_MEAN,
        "Each feature's mean in the training split.",
        labels,
        dict(zip(ref.features, ref.mean, strict=True)),
        "feature",
    )
    yield _gauge(
        Metric.REFERENCE_FEATURE_STDDEV,
        "Each feature's standard deviation in the training split (floored, never 0).",
        labels,
        dict(zip(ref.features, ref.stddev, strict=True)),
        "feature",
    )
    yield _gauge(
        Metric.REFERENCE_CLASS_RATIO,
        "Each class's share of the model's predictions on the training split.",
        labels,
        {str(c): r for c, r in zip(ref.classes, ref.class_ratio, strict=True)},
        "class",
    )
    yield _gauge(
        Metric.REFERENCE_DRIFT_THRESHOLD,
        "Drift thresholds calibrated on the validation split, by statistic.",
        labels,
        ref.drift_thresholds,
        "statistic",
    )
    yield _gauge(
        Metric.REFERENCE_WINDOW_INSTANCES,
        "The window size, in instances, the drift thresholds were calibrated for.",
        labels,
        {"": float(ref.window_instances)},
    )
    yield _gauge(
        Metric.REFERENCE_ANOMALY_THRESHOLD,
        "Epsilon: an instance whose anomaly score exceeds it counts as an anomaly.",
        labels,
        {"": ref.anomaly_threshold},
    )
    yield _gauge(
        Metric.REFERENCE_ANOMALY_RATE,
        "The expected share of anomalies on reference-like traffic.",
        labels,
        {"": ref.anomaly_rate},
    )


class Metrics:
    """Every series carries model, release and color, so blue and green can be told apart.

    ``classes`` are the values of the predictions counter's ``class`` label. For a regressor
    they are the bins of its predicted value (0..k, by the profile's prediction_edges and
    reference.prediction_bins), and ``predicted`` counts each prediction's bin: its profile
    holds those bins' shares as ``classes`` and ``class_ratio`` (mlops_reference_class_ratio),
    so the rendered prediction-drift rules and alerts, which compare the live shares by
    ``class`` with the reference's, work unchanged for either task.
    """

    def __init__(
        self,
        model: str,
        release: str,
        color: str,
        feature_names: list[str],
        classes: list[int],
        reference: Reference | None = None,
    ) -> None:
        labels = (model, release, color)
        self.registry = CollectorRegistry(auto_describe=True)
        self._latency = Histogram(
            Metric.LATENCY,
            "Time to answer a request, by route.",
            [*LABELS, "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._requests = Counter(
            Metric.REQUESTS,
            "Requests answered, by route and HTTP status code.",
            [*LABELS, "route", "code"],
            registry=self.registry,
        )
        predictions = Counter(
            Metric.PREDICTIONS,
            "Predictions returned, by predicted class (a regressor: bin of the predicted value).",
            [*LABELS, "class"],
            registry=self.registry,
        )
        self._by_class = [predictions.labels(*labels, str(c)) for c in classes]
        self.ready = Gauge(
            Metric.READY,
            "1 once the model loaded and self-tested.",
            list(LABELS),
            registry=self.registry,
        ).labels(*labels)
        self.info = Gauge(
            Metric.INFO,
            "The model this process serves (always 1).",
            [*LABELS, "model_sha256"],
            registry=self.registry,
        )
        self.inputs = InputStatistics(feature_names, labels, reference)
        self.registry.register(self.inputs)
        if reference is not None:
            self.registry.register(ReferenceGauges(reference, labels))
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
        """Count the predicted classes (a regressor: bins) of a batch, by index."""
        for i in class_indices.tolist():
            self._by_class[i].inc()

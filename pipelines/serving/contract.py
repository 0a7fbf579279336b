"""The serving contract: what the server, its image, verify and the rendered manifests must agree
on, defined here once.

The server (app.py, settings.py, smoke.py) builds its routes and reads its variables from these
names; ``mlops package`` renders the Dockerfile with them; verify runs and queries the image
with them; the manifest templates see them as ``serving.*``. A route or variable renamed here is
renamed everywhere, so the Deployment's probes can never point at a path the server does not
serve.

Standard library only, and no imports from the rest of ``pipelines``: the image carries it, and
stages, adapters and core import it without pulling in the server.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

# A numeric user and group, so Kubernetes can check runAsNonRoot without a passwd entry.
UID = 10001
USER = f"{UID}:{UID}"
# The port the server listens on unless MLOPS_PORT says otherwise (model.yaml's serving.port
# sets it per model).
PORT = 8080
# Where the image holds the model and its signature.json.
MODEL_DIR = "/model"
# `python -m` targets: the server (the image's entry point) and the post-deployment smoke test.
SERVER_MODULE = "pipelines.serving"
SMOKE_MODULE = "pipelines.serving.smoke"

HEALTH_PATH = "/healthz"  # the process is alive: startup and liveness probes
READY_PATH = "/readyz"  # the model loaded and passed its self-test: readiness probe
METRICS_PATH = "/metrics"  # Prometheus text format


class Env(StrEnum):
    """The environment variables the server reads (settings.py). All are prefixed ``MLOPS_``:
    Kubernetes injects ``<SERVICE>_PORT`` variables, and an unprefixed ``PORT`` would collide."""

    MODEL_DIR = "MLOPS_MODEL_DIR"
    HOST = "MLOPS_HOST"
    PORT = "MLOPS_PORT"
    RELEASE_ID = "MLOPS_RELEASE_ID"
    COLOR = "MLOPS_COLOR"
    MAX_BATCH = "MLOPS_MAX_BATCH"
    MAX_BODY_BYTES = "MLOPS_MAX_BODY_BYTES"
    SHUTDOWN_DELAY_SECONDS = "MLOPS_SHUTDOWN_DELAY_SECONDS"
    DRAIN_SECONDS = "MLOPS_DRAIN_SECONDS"
    HEADER_TIMEOUT_SECONDS = "MLOPS_HEADER_TIMEOUT_SECONDS"
    BODY_TIMEOUT_SECONDS = "MLOPS_BODY_TIMEOUT_SECONDS"
    KEEPALIVE_TIMEOUT_SECONDS = "MLOPS_KEEPALIVE_TIMEOUT_SECONDS"
    MAX_CONNECTIONS = "MLOPS_MAX_CONNECTIONS"
    ACCESS_LOG = "MLOPS_ACCESS_LOG"
    LOG_LEVEL = "MLOPS_LOG_LEVEL"


# Every series the server exports carries these labels; the rendered rules, alerts and dashboard
# group and join on them.
LABELS = ("model", "release", "color")


class Metric(StrEnum):
    """The series the server exports on METRICS_PATH, as Prometheus names them (counters end in
    ``_total``). The rendered recording rules, alerts and dashboard use these names, so the
    server and the monitoring objects cannot drift apart. Extra labels are noted per series."""

    # Traffic and answers
    REQUESTS = "mlops_requests_total"  # route, code
    LATENCY = "mlops_request_duration_seconds"  # histogram; route
    READY = "mlops_model_ready"
    INFO = "mlops_model_info"  # model_sha256
    # What production sends: running sums, so the rules derive windowed means and variances
    INSTANCES = "mlops_input_instances_total"
    FEATURE_SUM = "mlops_input_feature_sum_total"  # feature
    FEATURE_SQUARES = "mlops_input_feature_squares_total"  # feature
    PREDICTIONS = "mlops_predictions_total"  # class (a regressor: bin of the predicted value)
    ANOMALY_SCORE = "mlops_anomaly_score"  # histogram of each instance's anomaly score
    ANOMALIES = "mlops_anomalies_total"  # instances whose score exceeded the threshold
    # The release's reference profile (computed at train time, shipped in the image), exported
    # as gauges so the rules are the same for every release.
    REFERENCE_FEATURE_MEAN = "mlops_reference_feature_mean"  # feature
    REFERENCE_FEATURE_STDDEV = "mlops_reference_feature_stddev"  # feature; floored, never 0
    REFERENCE_CLASS_RATIO = "mlops_reference_class_ratio"  # class; the expected share
    # Calibrated thresholds, by statistic: "feature_effect" (|window mean - mean| / stddev
    # above which a feature counts as drifted), "drifted_fraction" (share of drifted features
    # that alarms), "prediction_psi" (PSI between the window's classes and the reference).
    REFERENCE_DRIFT_THRESHOLD = "mlops_reference_drift_threshold"  # statistic
    # The window size, in instances, the drift thresholds were calibrated for.
    REFERENCE_WINDOW_INSTANCES = "mlops_reference_window_instances"
    REFERENCE_ANOMALY_THRESHOLD = "mlops_reference_anomaly_threshold"  # epsilon on the score
    # The expected share of anomalous instances on reference-like traffic.
    REFERENCE_ANOMALY_RATE = "mlops_reference_anomaly_rate"


# TF Serving's version of the one model this server loads. Its REST API carries versions as
# int64 (protobuf JSON writes them as strings of digits, "1"); a release id is no int64, so the
# release is the version's label (``/labels/<release>``) and the ``mlops`` extension field of
# the metadata, and ``/readyz`` names it.
MODEL_VERSION = 1
# The classification signature a classifier's :classify uses, and the regression signature a
# regressor's :regress uses (named like TF Serving's example models' own: half_plus_three's
# regression signature is "tensorflow/serving/regress").
CLASSIFY_SIGNATURE = "tensorflow/serving/classify"
REGRESS_SIGNATURE = "tensorflow/serving/regress"
# A regressor's one output, as predict answers it ({"value": v} per instance, {"value": [...]}
# columnar) and the metadata names it.
VALUE = "value"


def answered_value(prediction: Any) -> float:
    """A regressor's value in one row-format predict answer, ``{"value": number}``; NaN, which
    equals nothing, when the answer has another shape."""
    if isinstance(prediction, dict) and list(prediction) == [VALUE]:
        value = prediction[VALUE]
        if type(value) is float or type(value) is int:  # not bool, a subclass of int
            return float(value)
    return math.nan


def model_path(model: str, version: str = "") -> str:
    """The model's status route, and the base of its other routes (TF Serving's REST API).

    ``version`` is empty (the latest version), or ``/versions/<V>`` or ``/labels/<L>``, which
    TF Serving accepts between the model and the rest of every model route."""
    return f"/v1/models/{model}{version}"


def predict_path(model: str, version: str = "") -> str:
    """The predict route of a model."""
    return f"{model_path(model, version)}:predict"


def classify_path(model: str, version: str = "") -> str:
    """The classify route of a model (TF Serving's Classify API; refused for a regressor)."""
    return f"{model_path(model, version)}:classify"


def regress_path(model: str, version: str = "") -> str:
    """The regress route of a model (TF Serving's Regress API; refused for a classifier)."""
    return f"{model_path(model, version)}:regress"


def metadata_path(model: str, version: str = "") -> str:
    """The metadata route of a model."""
    return f"{model_path(model, version)}/metadata"


# The path segments that select one version or one label of the model (path templates: the
# server reads ``{version}`` and ``{label}`` as path parameters).
VERSION_SEGMENTS = ("/versions/{version}", "/labels/{label}")


def routes(model: str, version: str = "") -> dict[str, tuple[str, str]]:
    """Every route the server serves for ``model``: {name: (method, path)}. The names are the
    ``route`` label of the server's metrics. With ``version`` (see model_path), the model's
    routes for that version or label."""
    model_routes = {
        "predict": ("POST", predict_path(model, version)),
        "classify": ("POST", classify_path(model, version)),
        "regress": ("POST", regress_path(model, version)),
        "status": ("GET", model_path(model, version)),
        "metadata": ("GET", metadata_path(model, version)),
    }
    if version:
        return model_routes
    return {
        **model_routes,
        "healthz": ("GET", HEALTH_PATH),
        "readyz": ("GET", READY_PATH),
        "metrics": ("GET", METRICS_PATH),
    }


def template_values() -> dict[str, Any]:
    """The contract as templates see it: ``serving.uid``, ``serving.env.port``, ..."""
    return {
        "uid": UID,
        "port": PORT,
        "model_dir": MODEL_DIR,
        "server_module": SERVER_MODULE,
        "smoke_module": SMOKE_MODULE,
        "health_path": HEALTH_PATH,
        "ready_path": READY_PATH,
        "metrics_path": METRICS_PATH,
        # Plain strings: a template's `q` filter writes them as JSON.
        "env": {var.name.lower(): var.value for var in Env},
    }

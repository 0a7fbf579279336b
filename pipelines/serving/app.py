"""The model server: TensorFlow Serving's REST contract on Starlette, run by uvicorn.

Routes (``<name>`` is the model's name), as contract.routes() defines them:
  POST /v1/models/<name>:predict   {"instances": [[...], ...]} -> {"predictions": [...]}
  GET  /v1/models/<name>           status, as TF Serving reports it
  GET  /v1/models/<name>/metadata  the input and output signature
  GET  /healthz                    the process is alive
  GET  /readyz                     the model loaded and reproduced its self-test predictions
  GET  /metrics                    Prometheus text format

Bad input is always answered 4xx with ``{"error": "..."}`` saying what was wrong.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from pipelines.serving import contract
from pipelines.serving.connections import TIMED_OUT, ConnectionCollector, ConnectionStats
from pipelines.serving.contract import LABELS
from pipelines.serving.jsonbody import (
    BadRequest,
    as_sent,
    decode,
    describe,
    quote_names,
    quote_text,
)
from pipelines.serving.reference import PROFILE, Reference, load_reference
from pipelines.serving.runtime import (
    SIGNATURE,
    Runtime,
    Signature,
    load_model_dir,
    scale_features,
)
from pipelines.serving.settings import Settings
from pipelines.serving.telemetry import Metrics, native_stderr_as_log

log = logging.getLogger("mlops.serving")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def json_response(payload: Any, status: int = 200) -> Response:
    """A JSON response; numpy values are serialized as their Python equivalents."""
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status,
        media_type="application/json",
    )


def _is_number(v: Any) -> bool:
    # bool is a subclass of int in Python; JSON true/false are not pixel values.
    t = type(v)
    return t is float or t is int


class _Sent:
    """What the client sent, quoted in errors: the body re-read with numbers as literals, once,
    and only when an error needs it."""

    def __init__(self, doc: Any, body: bytes | None) -> None:
        self._doc = doc
        self._body = body
        self._sent: Any = None

    def instance(self, i: int) -> Any:
        if self._sent is None and self._body is not None:
            try:
                self._sent = as_sent(self._body)
            except BadRequest:  # nested too deeply for the standard library: quote the values
                self._body = None
        return (self._sent or self._doc)["instances"][i]

    def value(self, i: int, j: int, width: int) -> str:
        inst = self.instance(i)  # it passed _flat_row: flat, or rows of `width` numbers
        return describe(inst[j // width][j % width] if isinstance(inst[0], list) else inst[j])


def _flat_row(i: int, inst: Any, n: int, h: int, w: int, sent: _Sent) -> list[Any]:
    """One instance as a flat list of numbers, either layout; the error says what it was."""
    if isinstance(inst, list) and len(inst) == n and all(_is_number(v) for v in inst):
        return inst
    if (
        isinstance(inst, list)
        and len(inst) == h
        and all(isinstance(r, list) and len(r) == w and all(_is_number(v) for v in r) for r in inst)
    ):
        return [v for r in inst for v in r]
    raise BadRequest(
        400,
        f"instance {i}: expected a list of {n} numbers (or {h} lists of {w} "
        f"numbers), got {describe(sent.instance(i))}",
    )


def _bound(v: float) -> str:
    return str(int(v)) if v.is_integer() else repr(v)


def _range_error(x: NDArray[np.float64], sig: Signature, sent: _Sent) -> BadRequest | None:
    finite = np.isfinite(x)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        return BadRequest(400, f"instance {i}: feature {sig.feature_names[j]} is not finite")
    outside = (x < sig.low) | (x > sig.high)
    if outside.any():
        i, j = (int(k) for k in np.argwhere(outside)[0])
        return BadRequest(
            400,
            f"instance {i}: feature {sig.feature_names[j]} = "
            f"{sent.value(i, j, sig.image_shape[1])} is outside the valid range "
            f"[{_bound(sig.low)}, {_bound(sig.high)}]",
        )
    return None


def _instances(doc: Any, max_batch: int) -> list[Any]:
    """The "instances" list of a decoded predict body: an object with no unknown fields, holding
    a non-empty list within the batch limit."""
    if not isinstance(doc, dict):
        raise BadRequest(400, 'the body must be a JSON object with an "instances" list')
    unknown = set(doc) - {"instances", "signature_name"}
    if unknown:
        raise BadRequest(
            400,
            f'unknown field(s) {quote_names(unknown)}; only "instances" '
            '(row format) and "signature_name" are accepted',
        )
    if doc.get("signature_name", "serving_default") != "serving_default":
        raise BadRequest(400, 'signature_name must be "serving_default"')
    instances = doc.get("instances")
    if not isinstance(instances, list):
        raise BadRequest(400, '"instances" must be a list of examples')
    if not instances:
        raise BadRequest(400, '"instances" is empty: send at least one example')
    if len(instances) > max_batch:
        raise BadRequest(
            413,
            f"{len(instances)} instances exceed the limit of {max_batch} per "
            "request; split the batch",
        )
    return instances


def parse_instances(
    doc: Any, sig: Signature, max_batch: int, body: bytes | None = None
) -> NDArray[np.float64]:
    """Validate a decoded predict body; return the raw feature rows, shape (n, features).

    ``body``, the bytes ``doc`` was decoded from, lets an error quote numbers as they were sent.

    The common request, flat rows of in-range numbers, is checked in one pure-Python pass per
    row: in the server that costs about half of what numpy's conversion and reductions do,
    because each numpy call pays its dispatch overhead with caches the event loop has cooled.
    Anything else takes the slow path, which words the error.
    """
    instances = _instances(doc, max_batch)
    n, (h, w), lo, hi = sig.n_features, sig.image_shape, sig.low, sig.high
    rows: list[list[Any]] = []
    slow = False
    for i, inst in enumerate(instances):
        # `_is_number` inlined (a call per value costs as much as the check); `type(v) is int`
        # excludes bool, and NaN fails both comparisons.
        if (
            type(inst) is list
            and len(inst) == n
            and all((type(v) is float or type(v) is int) and lo <= v <= hi for v in inst)
        ):
            rows.append(inst)
        else:
            rows.append(_flat_row(i, inst, n, h, w, _Sent(doc, body)))
            slow = True
    try:
        x = np.array(rows, dtype=np.float64)
    except OverflowError:  # an integer beyond float64's range
        raise BadRequest(400, "a value is too large to be a number") from None
    error = _range_error(x, sig, _Sent(doc, body)) if slow else None
    if error is not None:
        raise error
    return x


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (BadRequest) beyond limit, whether declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, "Content-Length is not a number")
        if len(declared) > 18 or int(declared) > limit:  # int() of 5,000 digits would raise
            raise BadRequest(
                413, f"body of {quote_text(declared)} bytes exceeds the limit of {limit}"
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # chunked bodies have no Content-Length to trust
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class ServerState:
    """What the server holds at run time: the model, metrics, and why it is not ready yet."""

    settings: Settings
    signature: Signature | None = None
    runtime: Runtime | None = None
    metrics: Metrics | None = None
    ready_reason: str = "the model is loading"
    draining: bool = False
    classes: list[int] = field(default_factory=list)
    connection_stats: ConnectionStats | None = None  # set when run by uvicorn (__main__)

    @property
    def ready(self) -> bool:
        """Whether the server takes traffic: the model is loaded and it is not draining."""
        return self.runtime is not None and not self.ready_reason and not self.draining


def load(state: ServerState) -> None:
    """Load the model and prove it reproduces the predictions recorded at packaging time."""
    try:
        with native_stderr_as_log(log):
            sig, runtime = load_model_dir(state.settings.model_dir)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        state.ready_reason = f"the model in {state.settings.model_dir} did not load: {exc}"
        log.error("model load failed", extra={"fields": {"reason": state.ready_reason}})
        _unready_metrics(state)
        return
    try:
        reference = _reference(state.settings.model_dir, sig)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        state.ready_reason = (
            f"the reference profile in {state.settings.model_dir} is unusable: {exc}"
        )
        log.error("profile load failed", extra={"fields": {"reason": state.ready_reason}})
        _unready_metrics(state)
        return
    state.signature, state.classes = sig, sig.classes
    state.metrics = Metrics(
        sig.model,
        state.settings.release,
        state.settings.color,
        sig.feature_names,
        sig.classes,
        reference,
    )
    state.metrics.info.labels(
        sig.model, state.settings.release, state.settings.color, sig.model_sha256
    ).set(1)
    if state.connection_stats is not None:
        state.metrics.registry.register(
            ConnectionCollector(
                state.connection_stats,
                list(LABELS),
                [sig.model, state.settings.release, state.settings.color],
            )
        )
    if sig.self_test_instances:
        x = scale_features(np.array(sig.self_test_instances), sig.low, sig.high, sig.image_shape)
        got = [sig.classes[i] for i in runtime.predict(x).argmax(axis=1).tolist()]
        if got != sig.self_test_classes:
            state.ready_reason = (
                f"self-test failed: predicted {got}, the package recorded {sig.self_test_classes}"
            )
            log.error("self-test failed", extra={"fields": {"reason": state.ready_reason}})
            return
    state.runtime = runtime
    state.ready_reason = ""
    state.metrics.ready.set(1)
    log.info(
        "model ready",
        extra={
            "fields": {
                "model": sig.model,
                "release": state.settings.release,
                "color": state.settings.color,
                "model_sha256": sig.model_sha256,
                "self_test_examples": len(sig.self_test_classes),
            }
        },
    )


def _unready_metrics(state: ServerState) -> None:
    """Metrics for a server whose model or profile did not load: it exports
    ``mlops_model_ready 0`` and counts the 503s it answers, as a server whose self-test failed
    does. Without them such a release exported nothing at all, so neither ModelDown (ready == 0)
    nor ModelErrorRate (5xx on predict) could see it. Nothing is exported when not even the
    signature can be read: the model's name and features are unknown then."""
    try:
        sig = Signature.from_json((state.settings.model_dir / SIGNATURE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return
    state.metrics = Metrics(
        sig.model, state.settings.release, state.settings.color, sig.feature_names, sig.classes
    )


def _reference(model_dir: Path, sig: Signature) -> Reference | None:
    """The profile the signature names; None, said in a log line, for a model packaged before
    releases had one (it is served, but exports no reference gauges and no anomaly scores)."""
    if not sig.profile_sha256:
        log.warning(
            "no reference profile: serving without reference gauges or anomaly scores",
            extra={"fields": {"model": sig.model, "hint": "re-package with a current mlops"}},
        )
        return None
    reference = load_reference(model_dir / PROFILE, sig.profile_sha256)
    if reference.features != sig.feature_names or reference.classes != sig.classes:
        raise ValueError("its features or classes differ from the signature's")
    n = len(sig.feature_names)
    if reference.center.shape != (n,) or reference.precision.shape != (n, n):
        raise ValueError(f"its Gaussian is not of dimension {n}")
    return reference


@functools.lru_cache(maxsize=8)
def _route_names(model: str) -> dict[str, str]:
    return {path: name for name, (_, path) in contract.routes(model).items()}


def _route_name(path: str, model: str) -> str:
    """A bounded label for metrics: raw paths would let any client create new series."""
    return _route_names(model).get(path, "other")


class Observe:
    """ASGI middleware: latency and status of every request, as metrics and one log line."""

    def __init__(self, app: ASGIApp, state: ServerState, model_name: str) -> None:
        self.app = app
        self.state = state
        # Known before the model loads (create_app), so a server that failed to load still
        # labels the requests it answers 503 by route.
        self.model_name = model_name

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """Pass an HTTP request on, then record its route, status and latency."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.state.draining:  # keep-alive clients: reconnect to a pod that stays
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - start
            metrics = self.state.metrics
            if metrics is not None:
                metrics.request(_route_name(scope["path"], self.model_name), status, elapsed)
            mode = self.state.settings.access_log
            if mode == "all" or (mode == "errors" and status >= 400):
                log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "path": scope["path"][:200],
                            "status": status,
                            "ms": round(elapsed * 1000, 3),
                        }
                    },
                )


class Handlers:
    """The endpoints, one method per route of the contract (same names)."""

    def __init__(self, settings: Settings, state: ServerState, model_name: str) -> None:
        self.settings = settings
        self.state = state
        self.model_name = model_name

    async def predict(self, request: Request) -> Response:
        """The predict route: instances in, class probabilities and predictions out."""
        # Draining does not stop predictions: until the listener closes, this pod may still be
        # in a Service's endpoints (see __main__). Only /readyz says it is going away.
        state, settings = self.state, self.settings
        if state.signature is None or state.runtime is None:
            return json_response({"error": f"not ready: {state.ready_reason}"}, 503)
        sig = state.signature
        try:
            # Like TF Serving, the Content-Type is not checked: `curl -d` sends a form type.
            body = await read_body(request, settings.max_body_bytes)
            raw = parse_instances(decode(body), sig, settings.max_batch, body)
        except BadRequest as exc:
            return json_response({"error": exc.message}, exc.status)
        except ClientDisconnect:
            # The client went away before its body arrived: not the server's error, so nginx's
            # 499 (client closed request), or 408 when the body timeout closed the connection
            # (connections.py). Nothing is sent; the status is for metrics and logs.
            return Response(status_code=408 if request.scope.get(TIMED_OUT) else 499)
        probs = state.runtime.predict(scale_features(raw, sig.low, sig.high, sig.image_shape))
        best = probs.argmax(axis=1)
        if state.metrics is not None:
            state.metrics.predicted(best)
            state.metrics.inputs.observe(raw)
        classes = state.classes
        return json_response(
            {
                "predictions": [
                    {"class": classes[k], "probabilities": probs[i]}
                    for i, k in enumerate(best.tolist())
                ]
            }
        )

    def status(self, _: Request) -> Response:
        """The model status route, in TF Serving's shape (AVAILABLE, LOADING or END)."""
        state = self.state
        if state.ready:
            code, message, st = "OK", "", "AVAILABLE"
        else:
            code, message = "UNAVAILABLE", state.ready_reason or "draining"
            st = "END" if state.draining else "LOADING"
        return json_response(
            {
                "model_version_status": [
                    {
                        "version": self.settings.release,
                        "state": st,
                        "status": {"error_code": code, "error_message": message},
                    }
                ]
            }
        )

    def metadata(self, _: Request) -> Response:
        """The model metadata route: the signature clients send and get back."""
        settings, sig = self.settings, self.state.signature
        if sig is None:
            return json_response({"error": f"not ready: {self.state.ready_reason}"}, 503)
        h, w = sig.image_shape
        return json_response(
            {
                "model_spec": {"name": sig.model, "version": settings.release},
                "metadata": {
                    "signature_def": {
                        "serving_default": {
                            "inputs": {
                                "instances": {
                                    "dtype": "number",
                                    "shape": [-1, sig.n_features],
                                    "alternative_shape": [-1, h, w],
                                    "range": [sig.low, sig.high],
                                    "features": sig.feature_names,
                                }
                            },
                            "outputs": {
                                "class": {"values": sig.classes},
                                "probabilities": {
                                    "dtype": "float32",
                                    "shape": [-1, len(sig.classes)],
                                },
                            },
                        }
                    },
                    "model_sha256": sig.model_sha256,
                    "color": settings.color,
                    "limits": {
                        "max_batch": settings.max_batch,
                        "max_body_bytes": settings.max_body_bytes,
                    },
                },
            }
        )

    def healthz(self, _: Request) -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "alive"})

    def readyz(self, _: Request) -> Response:
        """Readiness: 200 with the release when serving, 503 with the reason otherwise."""
        state = self.state
        if state.ready:
            return json_response({"status": "ready", "release": self.settings.release})
        reason = "draining: shutting down" if state.draining else state.ready_reason
        return json_response({"status": "not ready", "reason": reason}, 503)

    def metrics(self, _: Request) -> Response:
        """The Prometheus metrics, in the text exposition format."""
        if self.state.metrics is None:
            return Response(b"", media_type=CONTENT_TYPE_LATEST)
        return Response(
            generate_latest(self.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    async def http_error(self, _: Request, exc: Exception) -> Response:
        """Starlette's HTTP errors as JSON; a 404 names the model this server serves."""
        assert isinstance(exc, HTTPException)
        detail = exc.detail
        if exc.status_code == 404:
            detail = f"no such route; this server serves model {self.model_name!r}"
        return json_response({"error": detail}, exc.status_code)


def create_app(settings: Settings, state: ServerState | None = None) -> Starlette:
    """The serving application; it loads the model at startup, in its lifespan."""
    state = state or ServerState(settings)
    model_name = _model_name(settings)
    handlers = Handlers(settings, state, model_name)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        load(state)
        yield

    app = Starlette(
        routes=[
            # Each route's handler is the method of the same name: a route added to the contract
            # without one fails here, at start-up.
            Route(path, getattr(handlers, name), methods=[method])
            for name, (method, path) in contract.routes(model_name).items()
        ],
        exception_handlers={HTTPException: handlers.http_error},
        lifespan=lifespan,
    )
    app.state.server = state
    app.add_middleware(Observe, state=state, model_name=model_name)
    return app


def _model_name(settings: Settings) -> str:
    """The name routes are built on, known before the model loads (routes are static)."""
    try:
        return Signature.from_json((settings.model_dir / SIGNATURE).read_text()).model
    except (OSError, ValueError, KeyError, TypeError):
        return "model"

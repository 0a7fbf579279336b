"""The model server: TensorFlow Serving's REST contract on Starlette, run by uvicorn.

Routes (``<name>`` is the model's name), as contract.routes() defines them:
  POST /v1/models/<name>:predict   {"instances": [...]} -> {"predictions": [...]}, or
                                   {"inputs": [...]} -> {"outputs": {...}} (columnar); a
                                   regressor's answers are {"value": v}, {"value": [...]}
  POST /v1/models/<name>:classify  {"examples": [{feature: value}]} -> {"results": [[[label,
                                   score], ...]]}; refused for a regressor
  POST /v1/models/<name>:regress   {"examples": [{feature: value}]} -> {"results": [value,
                                   ...]}; refused for a classifier, as TF Serving refuses it
  GET  /v1/models/<name>           status, as TF Serving reports it (version "1")
  GET  /v1/models/<name>/metadata  TF Serving's signature_def map, and an ``mlops`` field
  GET  /healthz                    the process is alive
  GET  /readyz                     the model loaded and reproduced its self-test predictions
  GET  /metrics                    Prometheus text format
The model routes also answer under /versions/1 and /labels/<release>, as TF Serving's do.

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
from pipelines.serving.features import Feature, ImageSchema, TableSchema
from pipelines.serving.jsonbody import (
    BadRequest,
    as_sent,
    decode,
    describe,
    quote_names,
    quote_text,
)
from pipelines.serving.reference import PROFILE, Reference, load_reference, prediction_bins
from pipelines.serving.runtime import (
    CLASSIFICATION,
    REGRESSION,
    SIGNATURE,
    Runtime,
    Signature,
    load_model_dir,
    same_value,
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
    and only when an error needs it. ``where`` is the path of keys to the list of instances."""

    def __init__(self, doc: Any, body: bytes | None, where: tuple[str, ...]) -> None:
        self._doc = doc
        self._body = body
        self._where = where
        self._sent: Any = None

    def instance(self, i: int) -> Any:
        if self._sent is None and self._body is not None:
            try:
                self._sent = as_sent(self._body)
            except BadRequest:  # nested too deeply for the standard library: quote the values
                self._body = None
        node = self._sent or self._doc
        for key in self._where:
            node = node[key]
        return node[i]

    def value(self, i: int, j: int, width: int) -> str:
        inst = self.instance(i)  # it passed _flat_row: flat, h x w, or h x w x 1
        if not isinstance(inst[0], list):
            return describe(inst[j])
        pixel = inst[j // width][j % width]
        return describe(pixel[0] if isinstance(pixel, list) else pixel)


def _flat_row(i: int, inst: Any, n: int, h: int, w: int, sent: _Sent) -> list[Any]:
    """One instance as a flat list of numbers, any of the three layouts (n, h x w, or the
    model's own h x w x 1); the error says what it was."""
    if isinstance(inst, list) and len(inst) == n and all(_is_number(v) for v in inst):
        return inst
    if isinstance(inst, list) and len(inst) == h and all(isinstance(r, list) for r in inst):
        if all(len(r) == w and all(_is_number(v) for v in r) for r in inst):
            return [v for r in inst for v in r]
        if all(
            len(r) == w and all(isinstance(c, list) and len(c) == 1 and _is_number(c[0]) for c in r)
            for r in inst
        ):
            return [c[0] for r in inst for c in r]
    raise BadRequest(
        400,
        f"instance {i}: expected a list of {n} numbers (or {h} lists of {w} numbers, or "
        f"{h}x{w}x1 nested lists), got {describe(sent.instance(i))}",
    )


def _bound(v: float) -> str:
    return str(int(v)) if v.is_integer() else repr(v)


def _image(sig: Signature) -> tuple[tuple[int, int], float, float]:
    """The image shorthand's shape and range (parse_instances is only called for an image
    model: the server picks the parser by the schema's form)."""
    assert sig.image_shape is not None
    assert sig.low is not None
    assert sig.high is not None
    return sig.image_shape, sig.low, sig.high


def _range_error(x: NDArray[np.float64], sig: Signature, sent: _Sent) -> BadRequest | None:
    (_, width), low, high = _image(sig)
    finite = np.isfinite(x)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        return BadRequest(400, f"instance {i}: feature {sig.feature_names[j]} is not finite")
    outside = (x < low) | (x > high)
    if outside.any():
        i, j = (int(k) for k in np.argwhere(outside)[0])
        return BadRequest(
            400,
            f"instance {i}: feature {sig.feature_names[j]} = "
            f"{sent.value(i, j, width)} is outside the valid range "
            f"[{_bound(low)}, {_bound(high)}]",
        )
    return None


# The one input of the predict signature, as metadata names it; columnar requests may name it.
INPUT_NAME = "pixels"


def _check_fields(doc: Any) -> None:
    """A predict body is an object with no unknown fields, for the default signature."""
    if not isinstance(doc, dict):
        raise BadRequest(
            400, 'the body must be a JSON object with an "instances" or an "inputs" list'
        )
    unknown = set(doc) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise BadRequest(
            400,
            f'unknown field(s) {quote_names(unknown)}; only "instances" (row format), '
            '"inputs" (columnar format) and "signature_name" are accepted',
        )
    if doc.get("signature_name", "serving_default") != "serving_default":
        raise BadRequest(400, 'signature_name must be "serving_default"')


def _columnar(doc: dict[str, Any]) -> tuple[Any, tuple[str, ...]]:
    """The value of "inputs" and the keys that lead to the instances: a list, or
    ``{"pixels": list}`` (the input by name)."""
    if "instances" in doc:  # TF Serving: "either of them but NOT both"
        raise BadRequest(400, 'send "instances" (row format) or "inputs" (columnar), not both')
    inputs = doc["inputs"]
    if not isinstance(inputs, dict):
        return inputs, ("inputs",)
    if set(inputs) != {INPUT_NAME}:  # this model has exactly one input
        raise BadRequest(
            400,
            f'"inputs" names {quote_names(inputs) or "no input"}; this model has one input, '
            f'"{INPUT_NAME}"',
        )
    return inputs[INPUT_NAME], ("inputs", INPUT_NAME)


def _instances(doc: Any, max_batch: int) -> tuple[list[Any], tuple[str, ...]]:
    """The instances of a decoded predict body, and the keys that lead to them: "instances"
    (row format) or "inputs" (columnar format), a non-empty list within the batch limit."""
    _check_fields(doc)
    if "inputs" in doc:
        instances, where = _columnar(doc)
    elif "instances" in doc:
        instances, where = doc["instances"], ("instances",)
    else:
        raise BadRequest(400, 'the body needs "instances" (row format) or "inputs" (columnar)')
    field = f'"{where[0]}"'
    if not isinstance(instances, list):
        raise BadRequest(400, f"{field} must be a list of examples")
    if not instances:
        raise BadRequest(400, f"{field} is empty: send at least one example")
    if len(instances) > max_batch:
        raise BadRequest(
            413,
            f"{len(instances)} instances exceed the limit of {max_batch} per "
            "request; split the batch",
        )
    return instances, where


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
    instances, where = _instances(doc, max_batch)
    (h, w), lo, hi = _image(sig)
    n = sig.n_features
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
            rows.append(_flat_row(i, inst, n, h, w, _Sent(doc, body, where)))
            slow = True
    x = _as_array(rows)
    error = _range_error(x, sig, _Sent(doc, body, where)) if slow else None
    if error is not None:
        raise error
    return x


def _as_array(rows: list[list[Any]]) -> NDArray[np.float64]:
    try:
        return np.array(rows, dtype=np.float64)
    except OverflowError:  # an integer beyond float64's range
        raise BadRequest(400, "a value is too large to be a number") from None


def _feature(i: int, name: str, value: Any) -> Any:
    """One feature of a Classify or Regress example: a number, or (a tf.Example feature is a
    list) a list of one number."""
    if type(value) is list and len(value) == 1:
        value = value[0]
    if not _is_number(value):
        raise BadRequest(
            400,
            f"example {i}: feature {name} must be a number (or a list of one number), "
            f"got {describe(value)}",
        )
    return value


@dataclass(frozen=True)
class ExampleApi:
    """One of TF Serving's APIs over examples, Classify or Regress: the task of the models that
    serve it, the signature that does, and its method as TF Serving's metadata and errors name
    it."""

    task: str
    signature: str
    method: str


CLASSIFY = ExampleApi(CLASSIFICATION, contract.CLASSIFY_SIGNATURE, "tensorflow/serving/classify")
REGRESS = ExampleApi(REGRESSION, contract.REGRESS_SIGNATURE, "tensorflow/serving/regress")
_EXAMPLE_APIS = {api.task: api for api in (CLASSIFY, REGRESS)}
PREDICT_METHOD = "tensorflow/serving/predict"


def _methods(task: str) -> dict[str, str]:
    """A model's signatures and their methods, as TF Serving's metadata names them: predict,
    and its task's own (classify or regress)."""
    api = _EXAMPLE_APIS[task]
    return {"serving_default": PREDICT_METHOD, api.signature: api.method}


def _signature_error(name: Any, api: ExampleApi, task: str) -> str:
    """TF Serving's message for a Classify or Regress request (``api``) on a signature of a
    ``task`` model that cannot serve it."""
    if not isinstance(name, str):
        return "signature_name must be a string"
    methods = _methods(task)
    if name not in methods:
        return f"Serving signature name: {describe(name)} not found in signature def"
    return f"Expected {api.task} signature method_name to be {api.method}. Was: {methods[name]}"


def _examples(
    doc: Any, max_batch: int, known: set[str], api: ExampleApi
) -> tuple[list[Any], dict[str, Any]]:
    """The examples and the context of a decoded Classify or Regress body, checked as a
    whole."""
    if not isinstance(doc, dict):
        raise BadRequest(400, 'the body must be a JSON object with an "examples" list')
    unknown = set(doc) - {"examples", "context", "signature_name"}
    if unknown:
        raise BadRequest(
            400,
            f'unknown field(s) {quote_names(unknown)}; only "examples", "context" and '
            '"signature_name" are accepted',
        )
    name = doc.get("signature_name", api.signature)
    if name != api.signature:
        raise BadRequest(400, _signature_error(name, api, api.task))
    context, examples = doc.get("context", {}), doc.get("examples")
    if not isinstance(context, dict):
        raise BadRequest(400, '"context" must be an object of features')
    if set(context) - known:
        raise BadRequest(400, f'"context": unknown feature(s) {quote_names(set(context) - known)}')
    if not isinstance(examples, list):
        raise BadRequest(400, '"examples" must be a list of objects of features')
    if not examples:
        raise BadRequest(400, '"examples" is empty: send at least one example')
    if len(examples) > max_batch:
        raise BadRequest(
            413, f"{len(examples)} examples exceed the limit of {max_batch} per request; split it"
        )
    return examples, context


def _example_row(i: int, example: Any, context: dict[str, Any], names: list[str]) -> list[Any]:
    """One example, with the context's features, as numbers in the signature's order."""
    if not isinstance(example, dict):
        raise BadRequest(
            400, f"example {i}: expected an object of features, got {describe(example)}"
        )
    both = example.keys() & context.keys()
    if both:  # TF Serving: features in the context "MUST NOT appear in examples"
        raise BadRequest(400, f"example {i}: feature(s) {quote_names(both)} also in context")
    merged = {**context, **example}
    unknown = merged.keys() - set(names)
    if unknown:
        raise BadRequest(400, f"example {i}: unknown feature(s) {quote_names(unknown)}")
    missing = [f for f in names if f not in merged]
    if missing:
        raise BadRequest(400, f"example {i}: missing feature(s) {quote_names(missing)}")
    return [_feature(i, f, merged[f]) for f in names]


def parse_examples(
    doc: Any, sig: Signature, max_batch: int, api: ExampleApi = CLASSIFY
) -> NDArray[np.float64]:
    """Validate a decoded Classify or Regress body (TF Serving's ``{"examples": [{feature:
    value}, ...], "context": {...}}``); return the raw feature rows, in the signature's feature
    order."""
    names = sig.feature_names
    _, low, high = _image(sig)
    examples, context = _examples(doc, max_batch, set(names), api)
    rows = [_example_row(i, example, context, names) for i, example in enumerate(examples)]
    x = _as_array(rows)
    bad = ~np.isfinite(x) | (x < low) | (x > high)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise BadRequest(
            400,
            f"example {i}: feature {names[j]} = {describe(rows[i][j])} is outside the valid "
            f"range [{_bound(low)}, {_bound(high)}]",
        )
    return x


# --- Named features (a table): every value checked against the schema -----------------------


def _checked(what: str, feature: Feature, value: Any) -> Any:
    """``value`` if the feature's schema accepts it; else the 400 that says why."""
    problem = feature.problem(value)
    if problem is None:
        return value
    if value is None:
        raise BadRequest(400, f"{what}: feature {feature.name} {problem}")
    raise BadRequest(400, f"{what}: feature {feature.name} = {describe(value)} {problem}")


def _table_row(what: str, inst: Any, schema: TableSchema, objects: bool) -> list[Any]:
    """One instance, a positional row or an object keyed by feature name, as checked raw values
    in the schema's order."""
    features = schema.features
    if objects:
        if not isinstance(inst, dict):
            raise BadRequest(
                400,
                f"{what}: expected an object like the first instance, got {describe(inst)}; "
                "send every instance as an object keyed by feature name, or every one as a "
                "positional row, not a mix",
            )
        names = schema.names
        unknown = inst.keys() - set(names)
        if unknown:
            raise BadRequest(
                400,
                f"{what}: unknown feature(s) {quote_names(unknown)}; this model's features: "
                f"{quote_names(names)}",
            )
        missing = [n for n in names if n not in inst]
        if missing:
            raise BadRequest(
                400,
                f"{what}: missing feature(s) {quote_names(missing)} (send null for a missing "
                "value of a nullable feature)",
            )
        return [_checked(what, f, inst[f.name]) for f in features]
    if not isinstance(inst, list):
        kind = "an object among rows" if isinstance(inst, dict) else describe(inst)
        raise BadRequest(
            400,
            f"{what}: expected a row like the first instance, got {kind}; send every instance "
            "as a positional row, or every one as an object keyed by feature name, not a mix",
        )
    if len(inst) != len(features):
        raise BadRequest(
            400,
            f"{what}: expected a row of {len(features)} values ({quote_names(schema.names)} in "
            f"the order of the model's metadata), got {len(inst)}",
        )
    return [_checked(what, f, v) for f, v in zip(features, inst, strict=True)]


def _table_columnar(doc: dict[str, Any], schema: TableSchema, max_batch: int) -> list[Any]:
    """TF Serving's columnar format for named inputs, ``{"inputs": {feature: [values]}}``, as
    objects; a list under "inputs" is rows, as in the image form."""
    if "instances" in doc:
        raise BadRequest(400, 'send "instances" (row format) or "inputs" (columnar), not both')
    inputs = doc["inputs"]
    if not isinstance(inputs, dict):
        instances, _ = _instances(doc, max_batch)
        return instances
    names = schema.names
    unknown, missing = inputs.keys() - set(names), [n for n in names if n not in inputs]
    if unknown:
        raise BadRequest(400, f'"inputs": unknown feature(s) {quote_names(unknown)}')
    if missing:
        raise BadRequest(400, f'"inputs": missing feature(s) {quote_names(missing)}')
    lengths = {len(v) if isinstance(v, list) else -1 for v in inputs.values()}
    if -1 in lengths or len(lengths) != 1:
        raise BadRequest(400, '"inputs": every feature needs a list of values, all as long')
    (n,) = lengths
    if n == 0:
        raise BadRequest(400, '"inputs" is empty: send at least one example')
    if n > max_batch:
        raise BadRequest(
            413, f"{n} instances exceed the limit of {max_batch} per request; split the batch"
        )
    return [{name: inputs[name][i] for name in names} for i in range(n)]


def parse_table(doc: Any, schema: TableSchema, max_batch: int) -> list[list[Any]]:
    """Validate a decoded predict body for a model of named features; return the raw rows, in
    the schema's order. Instances are positional rows or objects keyed by feature name (TF
    Serving's row format), all of one form; "inputs" may be columnar by feature name."""
    _check_fields(doc)
    if "inputs" in doc:
        instances = _table_columnar(doc, schema, max_batch)
    else:
        instances, _ = _instances(doc, max_batch)
    objects = isinstance(instances[0], dict)
    return [_table_row(f"instance {i}", inst, schema, objects) for i, inst in enumerate(instances)]


def parse_table_examples(
    doc: Any, schema: TableSchema, max_batch: int, api: ExampleApi = CLASSIFY
) -> list[list[Any]]:
    """A Classify or Regress body for a model of named features: the raw rows, checked."""
    names = schema.names
    examples, context = _examples(doc, max_batch, set(names), api)
    rows = []
    for i, example in enumerate(examples):
        if not isinstance(example, dict):
            raise BadRequest(
                400, f"example {i}: expected an object of features, got {describe(example)}"
            )
        both = example.keys() & context.keys()
        if both:
            raise BadRequest(400, f"example {i}: feature(s) {quote_names(both)} also in context")
        # A tf.Example feature is a list: a list of one value is that value.
        merged = {
            k: v[0] if type(v) is list and len(v) == 1 else v
            for k, v in {**context, **example}.items()
        }
        rows.append(_table_row(f"example {i}", merged, schema, objects=True))
    return rows


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
    # The signature's feature schema: which parser a request takes, and the preprocessing.
    schema: ImageSchema | TableSchema | None = None
    runtime: Runtime | None = None
    metrics: Metrics | None = None
    ready_reason: str = "the model is loading"
    # The error code of a load that failed for good (TF Serving's status: END with the error);
    # empty while loading or loaded.
    failure: str = ""
    draining: bool = False
    classes: list[int] = field(default_factory=list)
    # A regressor's inner edges of the bins its predicted values are counted in (the profile's
    # prediction_edges; none without a profile: one bin); None for a classifier.
    edges: NDArray[np.float64] | None = None
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
        state.failure = "NOT_FOUND" if isinstance(exc, FileNotFoundError) else "INVALID_ARGUMENT"
        log.error("model load failed", extra={"fields": {"reason": state.ready_reason}})
        _unready_metrics(state)
        return
    try:
        schema = sig.schema()
    except (ValueError, KeyError, TypeError) as exc:
        state.ready_reason = f"the signature in {state.settings.model_dir} is unusable: {exc}"
        state.failure = "INVALID_ARGUMENT"
        log.error("model load failed", extra={"fields": {"reason": state.ready_reason}})
        return
    try:
        reference = _reference(state.settings.model_dir, sig, schema)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        state.ready_reason = (
            f"the reference profile in {state.settings.model_dir} is unusable: {exc}"
        )
        state.failure = "INVALID_ARGUMENT"
        log.error("profile load failed", extra={"fields": {"reason": state.ready_reason}})
        _unready_metrics(state)
        return
    state.signature, state.schema, state.classes = sig, schema, sig.classes
    if sig.regressor:
        state.edges = reference.prediction_edges if reference else np.empty(0)
    state.metrics = Metrics(
        sig.model,
        state.settings.release,
        state.settings.color,
        schema.monitored_names,
        _counted(state),
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
    if runtime.n_outputs != sig.n_outputs:
        state.ready_reason = (
            f"the model in {state.settings.model_dir} has {runtime.n_outputs} output(s); a "
            f"{sig.task} model of this signature has {sig.n_outputs}"
        )
        state.failure = "INVALID_ARGUMENT"
        log.error("model load failed", extra={"fields": {"reason": state.ready_reason}})
        return
    problem = _self_test(sig, schema, runtime)
    if problem:
        state.ready_reason = f"self-test failed: {problem}"
        state.failure = "FAILED_PRECONDITION"
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
                "self_test_examples": len(sig.self_test_instances),
            }
        },
    )


def _counted(state: ServerState) -> list[int]:
    """The values of the predictions counter's ``class`` label: a classifier's classes, a
    regressor's bins of its predicted value (telemetry.Metrics)."""
    if state.edges is None:
        return state.classes
    return list(range(len(state.edges) + 1))


def _self_test(sig: Signature, schema: ImageSchema | TableSchema, runtime: Runtime) -> str:
    """How the runtime's predictions of the self-test instances differ from those the package
    recorded (evaluate's); empty when they agree: the same classes, or values within
    runtime.VALUE_TOLERANCE."""
    if not sig.self_test_instances:
        return ""
    out = runtime.predict(_model_input(schema, sig.self_test_instances)[0])
    got: list[Any]
    want: list[Any]
    if sig.regressor:
        got, want = out.reshape(-1).tolist(), sig.self_test_values
        same = len(got) == len(want) and all(map(same_value, got, want))
    else:
        got = [sig.classes[i] for i in out.argmax(axis=1).tolist()]
        want, same = sig.self_test_classes, got == sig.self_test_classes
    return "" if same else f"predicted {got}, the package recorded {want}"


def _unready_metrics(state: ServerState) -> None:
    """Metrics for a server whose model or profile did not load: it exports
    ``mlops_model_ready 0`` and counts the 503s it answers, as a server whose self-test failed
    does. Without them such a release exported nothing at all, so neither ModelDown (ready == 0)
    nor ModelErrorRate (5xx on predict) could see it. Nothing is exported when not even the
    signature can be read: the model's name and features are unknown then."""
    try:
        sig = Signature.from_json((state.settings.model_dir / SIGNATURE).read_text())
        names = sig.schema().monitored_names
    except (OSError, ValueError, KeyError, TypeError):
        return
    state.metrics = Metrics(
        sig.model, state.settings.release, state.settings.color, names, sig.classes
    )


def _model_input(
    schema: ImageSchema | TableSchema, raw: Any
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Checked raw rows -> (model inputs, the vectors the input gauges observe), by the
    schema's one preprocessing (features.py), which training and evaluation ran too."""
    if isinstance(schema, ImageSchema):
        raw = np.asarray(raw, dtype=np.float64)
        return schema.encode(raw), raw
    x = schema.encode_rows(raw)
    return x, schema.monitored(x)


def _reference(
    model_dir: Path, sig: Signature, schema: ImageSchema | TableSchema
) -> Reference | None:
    """The profile the signature names; None, said in a log line, for a model packaged before
    releases had one (it is served, but exports no reference gauges and no anomaly scores)."""
    if not sig.profile_sha256:
        log.warning(
            "no reference profile: serving without reference gauges or anomaly scores",
            extra={"fields": {"model": sig.model, "hint": "re-package with a current mlops"}},
        )
        return None
    reference = load_reference(model_dir / PROFILE, sig.profile_sha256)
    names = schema.monitored_names
    edges = reference.prediction_edges
    if sig.regressor != bool(edges.size):
        raise ValueError(f"its prediction edges do not fit a {sig.task} model")
    # A regressor's profile holds the shares of the bins of its predicted value as classes.
    classes = list(range(edges.size + 1)) if sig.regressor else sig.classes
    if reference.features != names or reference.classes != classes:
        raise ValueError("its features or classes differ from the signature's")
    n = len(names)
    if reference.center.shape != (n,) or reference.precision.shape != (n, n):
        raise ValueError(f"its Gaussian is not of dimension {n}")
    return reference


@functools.lru_cache(maxsize=8)
def _route_names(model: str) -> dict[str, str]:
    return {path: name for name, (_, path) in contract.routes(model).items()}


def _route_name(path: str, model: str, endpoint: Any = None) -> str:
    """A bounded label for metrics: raw paths would let any client create new series. A path
    with a version or label is named by the handler its route matched (the route's name)."""
    name = _route_names(model).get(path)
    if name is None:
        name = getattr(endpoint, "__name__", "other")
    return name


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
                metrics.request(
                    _route_name(scope["path"], self.model_name, scope.get("endpoint")),
                    status,
                    elapsed,
                )
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

    def _version_error(self, request: Request) -> Response | None:
        """None when the request's version or label (if any) is the loaded one; else TF
        Serving's answer: 404 for another version, 400 for an unknown label."""
        params = request.path_params
        if not params:  # the latest version: every request without /versions or /labels
            return None
        version, label = params.get("version"), params.get("label")
        if version is not None and version != str(contract.MODEL_VERSION):
            if not version.isdigit():  # TF Serving's routes only match digits
                return json_response({"error": self._no_route}, 404)
            return json_response(
                {
                    "error": f"Servable not found for request: "
                    f"Specific({self.model_name}, {quote_text(version)})"
                },
                404,
            )
        if label is not None and label != self.settings.release:
            return json_response(
                {"error": f"Unrecognized servable version label: {quote_text(label)}"}, 400
            )
        return None

    @property
    def _no_route(self) -> str:
        return f"no such route; this server serves model {self.model_name!r}"

    async def _read(self, request: Request) -> tuple[bytes, Any] | Response:
        """The request's body and its decoded JSON, or the answer that refuses it."""
        try:
            # Like TF Serving, the Content-Type is not checked: `curl -d` sends a form type.
            body = await read_body(request, self.settings.max_body_bytes)
            return body, decode(body)
        except BadRequest as exc:
            return json_response({"error": exc.message}, exc.status)
        except ClientDisconnect:
            # The client went away before its body arrived: not the server's error, so nginx's
            # 499 (client closed request), or 408 when the body timeout closed the connection
            # (connections.py). Nothing is sent; the status is for metrics and logs.
            return Response(status_code=408 if request.scope.get(TIMED_OUT) else 499)

    def _infer(
        self, schema: ImageSchema | TableSchema, runtime: Runtime, raw: Any
    ) -> tuple[NDArray[Any], NDArray[Any]]:
        """The model's outputs (class probabilities, or a regressor's values as one column) and
        what the metrics count of each row: its best class, or the bin of its value. ``raw``:
        the checked raw rows (an array for an image model, lists of values for a table)."""
        if isinstance(schema, ImageSchema):  # the hot path of image models: no extra call
            x, observed = scale_features(raw, schema.low, schema.high, schema.shape), raw
        else:
            x, observed = _model_input(schema, raw)
        out = runtime.predict(x)
        edges = self.state.edges
        best = out.argmax(axis=1) if edges is None else prediction_bins(out.reshape(-1), edges)
        metrics = self.state.metrics
        if metrics is not None:
            metrics.predicted(best)
            metrics.inputs.observe(observed)
        return out, best

    async def _admit(self, request: Request, loaded: bool = True) -> tuple[bytes, Any] | Response:
        """What every inference route checks first, in TF Serving's order: the model is loaded
        (unless ``loaded`` is False), the version or label is this one, and the body reads as
        JSON within the limits. The (body, document), or the error response."""
        state = self.state
        if loaded and (state.signature is None or state.runtime is None):
            return json_response({"error": f"not ready: {state.ready_reason}"}, 503)
        refused = self._version_error(request)
        if refused is not None:
            return refused
        return await self._read(request)

    async def predict(self, request: Request) -> Response:
        """The predict route: instances (rows) or inputs (columnar) in, class probabilities and
        predictions (a regressor: values) out, as predictions (rows) or outputs (columnar)."""
        # Draining does not stop predictions: until the listener closes, this pod may still be
        # in a Service's endpoints (see __main__). Only /readyz says it is going away.
        state = self.state
        read = await self._admit(request)
        if isinstance(read, Response):
            return read
        body, doc = read
        # _admit checked both (for the type checker: python -O would drop these).
        assert state.signature is not None
        assert state.schema is not None
        assert state.runtime is not None
        schema = state.schema
        raw: Any
        try:
            if isinstance(schema, ImageSchema):
                raw = parse_instances(doc, state.signature, self.settings.max_batch, body)
            else:
                raw = parse_table(doc, schema, self.settings.max_batch)
        except BadRequest as exc:
            return json_response({"error": exc.message}, exc.status)
        probs, best = self._infer(schema, state.runtime, raw)
        if state.signature.regressor:
            values = probs.reshape(-1)  # float32: JSON gets each value's shortest decimal
            if "instances" not in doc:
                return json_response({"outputs": {contract.VALUE: values}})
            return json_response({"predictions": [{contract.VALUE: v} for v in values]})
        classes = state.classes
        if "instances" not in doc:  # columnar in, columnar out: one list per output
            return json_response(
                {"outputs": {"class": [classes[k] for k in best.tolist()], "probabilities": probs}}
            )
        return json_response(
            {
                "predictions": [
                    {"class": classes[k], "probabilities": probs[i]}
                    for i, k in enumerate(best.tolist())
                ]
            }
        )

    async def classify(self, request: Request) -> Response:
        """TF Serving's Classify API: examples of named features in, every class's label and
        score per example out. Refused for a regressor."""
        return await self._on_examples(request, CLASSIFY)

    async def regress(self, request: Request) -> Response:
        """TF Serving's Regress API: examples of named features in, one value per example out.
        Refused for a classifier."""
        return await self._on_examples(request, REGRESS)

    async def _on_examples(self, request: Request, api: ExampleApi) -> Response:
        """Classify or Regress (``api``). A model of the other task has no signature for it:
        the body is read and checked like any other, then refused with TF Serving's error."""
        state = self.state
        read = await self._admit(request)
        if isinstance(read, Response):
            return read
        # _admit checked them (for the type checker: python -O would drop these).
        assert state.signature is not None
        assert state.schema is not None
        assert state.runtime is not None
        sig, schema, doc = state.signature, state.schema, read[1]
        if sig.task != api.task:
            if not isinstance(doc, dict):
                return json_response(
                    {"error": 'the body must be a JSON object with "examples"'}, 400
                )
            name = doc.get("signature_name", "serving_default")
            return json_response({"error": _signature_error(name, api, sig.task)}, 400)
        raw: Any
        try:
            if isinstance(schema, ImageSchema):
                raw = parse_examples(doc, sig, self.settings.max_batch, api)
            else:
                raw = parse_table_examples(doc, schema, self.settings.max_batch, api)
        except BadRequest as exc:
            return json_response({"error": exc.message}, exc.status)
        out, _ = self._infer(schema, state.runtime, raw)
        if sig.regressor:
            return json_response({"results": out.reshape(-1)})
        labels = [str(c) for c in state.classes]  # TF Serving's labels are strings
        return json_response(
            {"results": [list(zip(labels, row.tolist(), strict=True)) for row in out]}
        )

    def status(self, request: Request) -> Response:
        """The model status route, in TF Serving's shape: LOADING, AVAILABLE, UNLOADING while
        draining, or END with the error after a load that failed for good."""
        refused = self._version_error(request)
        if refused is not None:
            return refused
        state = self.state
        code, message = "OK", ""
        if state.failure:
            st, code, message = "END", state.failure, state.ready_reason
        elif state.draining:
            st = "UNLOADING"
        elif state.ready:
            st = "AVAILABLE"
        else:
            st = "LOADING"
        return json_response(
            {
                "model_version_status": [
                    {
                        "version": str(contract.MODEL_VERSION),
                        "state": st,
                        "status": {"error_code": code, "error_message": message},
                    }
                ]
            }
        )

    def metadata(self, request: Request) -> Response:
        """The model metadata route: TF Serving's signature_def map, and what else a client may
        want to know under ``mlops``."""
        settings, sig = self.settings, self.state.signature
        if sig is None:
            return json_response({"error": f"not ready: {self.state.ready_reason}"}, 503)
        refused = self._version_error(request)
        if refused is not None:
            return refused
        schema = self.state.schema
        if isinstance(schema, TableSchema):
            inputs = {f.name: _tensor(_DTYPES[_dtype(f)], [-1]) for f in schema.features}
            about: dict[str, Any] = {
                "features": sig.feature_names,
                "schema": schema.to_list(),
                "instance_forms": ["row", "object"],
                "encoded_inputs": schema.encoded_names,
            }
        else:
            (h, w), low, high = _image(sig)
            inputs = {INPUT_NAME: _tensor("DT_FLOAT", [-1, h, w, 1])}
            about = {
                "features": sig.feature_names,
                "range": [low, high],
                "instance_shapes": [[sig.n_features], [h, w], [h, w, 1]],
            }
        return json_response(
            {
                "model_spec": {
                    "name": sig.model,
                    "signature_name": "",
                    "version": str(contract.MODEL_VERSION),
                },
                "metadata": {"signature_def": {"signature_def": _signature_defs(sig, inputs)}},
                # Not TF Serving's: what its signature_def cannot say. A TF Serving client
                # ignores it.
                "mlops": {
                    "release": settings.release,
                    "color": settings.color,
                    "model_sha256": sig.model_sha256,
                    **about,
                    "task": sig.task,
                    **({} if sig.regressor else {"classes": sig.classes}),
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
            detail = self._no_route
        return json_response({"error": detail}, exc.status_code)


def _signature_defs(sig: Signature, inputs: dict[str, Any]) -> dict[str, Any]:
    """The SignatureDef map of TF Serving's metadata: predict (``serving_default``) over the
    model's ``inputs``, and the task's own signature over serialized tf.Examples, with the
    output tensors TensorFlow's signature_def_utils name (classify: classes and scores;
    regress: outputs)."""
    api = _EXAMPLE_APIS[sig.task]
    own_inputs = {"inputs": _tensor("DT_STRING", [-1])}
    if sig.regressor:
        predicted = {contract.VALUE: _tensor("DT_FLOAT", [-1, 1])}
        own = {"outputs": _tensor("DT_FLOAT", [-1, 1])}
    else:
        k = len(sig.classes)
        predicted = {
            "class": _tensor("DT_INT64", [-1]),
            "probabilities": _tensor("DT_FLOAT", [-1, k]),
        }
        own = {"classes": _tensor("DT_STRING", [-1, k]), "scores": _tensor("DT_FLOAT", [-1, k])}
    return {
        "serving_default": {"inputs": inputs, "outputs": predicted, "method_name": PREDICT_METHOD},
        api.signature: {"inputs": own_inputs, "outputs": own, "method_name": api.method},
    }


# A named feature's tensor type, as TF Serving's metadata would show a model input of it.
_DTYPES = {"float": "DT_FLOAT", "int": "DT_INT64", "bool": "DT_BOOL", "str": "DT_STRING"}


def _dtype(feature: Feature) -> str:
    if feature.type != "categorical":
        return feature.type
    return "str" if isinstance(feature.values[0], str) else "int"


def _tensor(dtype: str, shape: list[int]) -> dict[str, Any]:
    """A TensorInfo as TF Serving's metadata prints it (protobuf JSON: int64 sizes as strings,
    every field present)."""
    return {
        "dtype": dtype,
        "tensor_shape": {
            "dim": [{"size": str(size), "name": ""} for size in shape],
            "unknown_rank": False,
        },
        "name": "",
    }


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
            for version in ("", *contract.VERSION_SEGMENTS)
            for name, (method, path) in contract.routes(model_name, version).items()
        ],
        exception_handlers={HTTPException: handlers.http_error},
        lifespan=lifespan,
    )
    # TF Serving does not redirect: a trailing slash is another (unknown) route, answered 404
    # with {"error"}, not a 307 that clients would follow or not.
    app.router.redirect_slashes = False
    app.state.server = state
    app.add_middleware(Observe, state=state, model_name=model_name)
    return app


def _model_name(settings: Settings) -> str:
    """The name routes are built on, known before the model loads (routes are static)."""
    try:
        return Signature.from_json((settings.model_dir / SIGNATURE).read_text()).model
    except (OSError, ValueError, KeyError, TypeError):
        return "model"

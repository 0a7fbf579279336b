"""Infra validation (TFX InfraValidator's LOAD_AND_QUERY) as pure decisions: which malformed
requests the real image must refuse, and the verdict over what verify observed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipelines.core.gating import RuleResult, Verdict
from pipelines.serving import contract
from pipelines.serving.features import NUMERIC, ImageSchema, TableSchema


@dataclass(frozen=True)
class Case:
    """A malformed request the image must refuse, and the status code it must answer."""

    name: str
    method: str
    path: str
    body: bytes
    expect: int


def _limits(predict: str, ok: object, max_batch: int, max_body_bytes: int) -> list[Case]:
    """One instance too many, and one byte too many: both answered 413."""
    too_many = json.dumps({"instances": [ok] * (max_batch + 1)}).encode()
    too_big = b'{"instances": [' + b" " * max_body_bytes + b"]}"
    return [
        Case("batch over the limit", "POST", predict, too_many, 413),
        Case("body over the limit", "POST", predict, too_big, 413),
    ]


def malformed_requests(
    model: str,
    n_features: int,
    image_shape: tuple[int, int],
    low: float,
    high: float,
    max_batch: int,
    max_body_bytes: int,
) -> list[Case]:
    """Requests a correct server answers with the given 4xx, and never with a 5xx."""
    predict = contract.predict_path(model)
    ok = [low] * n_features
    h, w = image_shape

    def body(doc: object) -> bytes:
        return json.dumps(doc).encode()

    return [
        Case("not JSON", "POST", predict, b'{"instances": [', 400),
        Case("JSON that is not an object", "POST", predict, b"[1, 2, 3]", 400),
        Case("neither instances nor inputs", "POST", predict, body({}), 400),
        Case(
            "both instances and inputs",
            "POST",
            predict,
            body({"instances": [ok], "inputs": [ok]}),
            400,
        ),
        Case("instances not a list", "POST", predict, body({"instances": 5}), 400),
        Case("empty instances", "POST", predict, body({"instances": []}), 400),
        Case("too few features", "POST", predict, body({"instances": [ok[:-1]]}), 400),
        Case("too many features", "POST", predict, body({"instances": [[*ok, low]]}), 400),
        Case("ragged image", "POST", predict, body({"instances": [[[low] * (w - 1)] * h]}), 400),
        Case("string values", "POST", predict, body({"instances": [["1"] * n_features]}), 400),
        Case("boolean values", "POST", predict, body({"instances": [[True] * n_features]}), 400),
        Case("null values", "POST", predict, body({"instances": [[None] * n_features]}), 400),
        Case(
            "NaN literal",
            "POST",
            predict,
            b'{"instances": [[NaN' + b", 0" * (n_features - 1) + b"]]}",
            400,
        ),
        Case(
            "infinite value",
            "POST",
            predict,
            b'{"instances": [[1e999' + b", 0" * (n_features - 1) + b"]]}",
            400,
        ),
        Case(
            "above the range", "POST", predict, body({"instances": [[high + 1] * n_features]}), 400
        ),
        Case(
            "below the range", "POST", predict, body({"instances": [[low - 1] * n_features]}), 400
        ),
        Case("unknown field", "POST", predict, body({"instances": [ok], "debug": True}), 400),
        # Parsers disagree on which copy of a key wins: a proxy could check one, we serve another.
        Case(
            "duplicate key",
            "POST",
            predict,
            b'{"instances": [' + body(ok) + b'], "instances": [' + body(ok) + b"]}",
            400,
        ),
        Case(
            "deeply nested instance",
            "POST",
            predict,
            b'{"instances": [' + b"[" * 1000 + b"]" * 1000 + b"]}",
            400,
        ),
        *_limits(predict, ok, max_batch, max_body_bytes),
        Case(
            "unknown model",
            "POST",
            contract.predict_path("no-such-model"),
            body({"instances": [ok]}),
            404,
        ),
        Case("wrong method", "GET", predict, b"", 405),
    ]


def schema_requests(
    model: str, schema: ImageSchema | TableSchema, max_batch: int, max_body_bytes: int
) -> list[Case]:
    """The malformed requests for a model's feature schema: the image shorthand's, or those a
    table of named features implies (table_requests)."""
    if isinstance(schema, ImageSchema):
        return malformed_requests(
            model,
            len(schema.names),
            schema.shape,
            schema.low,
            schema.high,
            max_batch,
            max_body_bytes,
        )
    return table_requests(model, schema, max_batch, max_body_bytes)


def table_requests(
    model: str, schema: TableSchema, max_batch: int, max_body_bytes: int
) -> list[Case]:
    """Requests a correct server refuses for a model of named features, generated from its
    schema: each one breaks a valid object (schema.example()) in one way."""
    predict = contract.predict_path(model)
    names = schema.names
    row = schema.example()
    ok = dict(zip(names, row, strict=True))

    def body(doc: object) -> bytes:
        return json.dumps(doc).encode()

    def instance(name: str, value: object) -> bytes:
        return body({"instances": [{**ok, name: value}]})

    cases = [
        Case("not JSON", "POST", predict, b'{"instances": [', 400),
        Case("neither instances nor inputs", "POST", predict, body({}), 400),
        Case("empty instances", "POST", predict, body({"instances": []}), 400),
        Case("unknown feature", "POST", predict, body({"instances": [{**ok, "_x": 1}]}), 400),
        Case(
            "missing feature",
            "POST",
            predict,
            body({"instances": [{k: v for k, v in ok.items() if k != names[0]}]}),
            400,
        ),
        Case("too few values in a row", "POST", predict, body({"instances": [row[:-1]]}), 400),
        Case("rows mixed with objects", "POST", predict, body({"instances": [row, ok]}), 400),
        Case("unknown field", "POST", predict, body({"instances": [ok], "debug": True}), 400),
        *_limits(predict, ok, max_batch, max_body_bytes),
        Case("wrong method", "GET", predict, b"", 405),
    ]
    for f in schema.features:
        if not f.nullable:
            cases.append(Case(f"{f.name}: null", "POST", predict, instance(f.name, None), 400))
        if f.type in NUMERIC:
            assert f.max is not None
            cases += [
                Case(
                    f"{f.name}: a number as a string",
                    "POST",
                    predict,
                    instance(f.name, str(ok[f.name])),
                    400,
                ),
                Case(
                    f"{f.name}: above the range", "POST", predict, instance(f.name, f.max + 1), 400
                ),
                Case(f"{f.name}: a boolean", "POST", predict, instance(f.name, True), 400),
            ]
        elif f.type == "bool":
            cases.append(Case(f"{f.name}: a number", "POST", predict, instance(f.name, 1), 400))
        else:
            unknown: object = (
                "\u0000not-in-vocabulary"
                if isinstance(f.values[0], str)
                else -(max(abs(int(v)) for v in f.values) + 1)
            )
            cases.append(
                Case(
                    f"{f.name}: outside the vocabulary",
                    "POST",
                    predict,
                    instance(f.name, unknown),
                    400,
                )
            )
    return cases


@dataclass
class Observations:
    """What verify observed while starting and querying the real image."""

    ready_seconds: float | None
    ready_timeout_s: float
    ready_error: str = ""
    examples: int = 0
    # (row, want, got): a classifier's classes, a regressor's values
    mismatches: list[tuple[int, float, float]] = field(default_factory=list)
    malformed: list[tuple[str, int, int]] = field(default_factory=list)  # (case, want, got)
    restarts: int = 0
    alive_after: bool = False
    log_lines: int = 0
    non_json_log_lines: list[str] = field(default_factory=list)
    uid: int | None = None
    sbom_missing: list[str] = field(default_factory=list)  # in the image, not in the SBOM
    sbom_extra: list[str] = field(default_factory=list)  # in the SBOM, not in the image


def decide(o: Observations) -> Verdict:
    """The infra-validation verdict over what verify observed."""
    rules: list[RuleResult] = []
    if o.ready_seconds is None:
        rules.append(
            RuleResult(
                "ready",
                False,
                o.ready_error
                or f"{contract.READY_PATH} did not answer 200 within {o.ready_timeout_s:g} s",
            )
        )
        return Verdict(False, rules)
    rules.append(
        RuleResult(
            "ready",
            True,
            f"{contract.READY_PATH} answered 200 after {o.ready_seconds:.1f} s "
            f"(limit {o.ready_timeout_s:g} s)",
        )
    )
    if o.mismatches:
        shown = ", ".join(f"row {r}: evaluate {a}, image {b}" for r, a, b in o.mismatches[:5])
        rules.append(
            RuleResult(
                "same_predictions",
                False,
                f"{len(o.mismatches)} of {o.examples} predictions differ from evaluate's ({shown})",
            )
        )
    else:
        rules.append(
            RuleResult(
                "same_predictions",
                True,
                f"all {o.examples} test examples got the prediction evaluate measured",
            )
        )
    wrong = [(c, want, got) for c, want, got in o.malformed if got != want]
    if wrong:
        shown = "; ".join(f"{c}: {got} (want {want})" for c, want, got in wrong[:5])
        rules.append(
            RuleResult(
                "malformed_rejected",
                False,
                f"{len(wrong)} of {len(o.malformed)} malformed requests were "
                f"not refused as expected: {shown}",
            )
        )
    else:
        rules.append(
            RuleResult(
                "malformed_rejected",
                True,
                f"all {len(o.malformed)} malformed requests got their 4xx",
            )
        )
    stable = o.restarts == 0 and o.alive_after
    rules.append(
        RuleResult(
            "no_restart",
            stable,
            (
                f"the container never restarted and still answers {contract.HEALTH_PATH}"
                if stable
                else f"the container restarted {o.restarts} time(s) or stopped answering "
                f"{contract.HEALTH_PATH}"
            ),
        )
    )
    logs_ok = o.log_lines > 0 and not o.non_json_log_lines
    rules.append(
        RuleResult(
            "structured_logs",
            logs_ok,
            (
                f"all {o.log_lines} log lines (stdout and stderr) are JSON objects"
                if logs_ok
                else f"log lines that are not JSON: {o.non_json_log_lines[:3]!r}"
                if o.non_json_log_lines
                else "the server wrote no log lines"
            ),
        )
    )
    rules.append(
        RuleResult(
            "non_root",
            o.uid not in (None, 0),
            (
                f"the server runs as uid {o.uid} on a read-only root filesystem"
                if o.uid
                else "the server runs as root"
                if o.uid == 0
                else "the server's uid could not be read"
            ),
        )
    )
    sbom_ok = not o.sbom_missing and not o.sbom_extra
    rules.append(
        RuleResult(
            "sbom_matches",
            sbom_ok,
            (
                "the SBOM lists exactly the Python packages installed in the image"
                if sbom_ok
                else f"SBOM drift: in the image only {o.sbom_missing[:5]}, in the SBOM only "
                f"{o.sbom_extra[:5]}"
            ),
        )
    )
    return Verdict(all(r.passed for r in rules), rules)

"""Requests for a model of named features: rows or objects, every value checked against the
schema, each class of bad input answered 400 with a message naming the instance and feature."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.serving.app import parse_table, parse_table_examples
from pipelines.serving.jsonbody import BadRequest, decode
from tests import table_model

SCHEMA = table_model.schema()
OK = {"tenure": 12.5, "spend": -3, "calls": 4, "online": True, "plan": "pro", "rating": None}
ROW = list(OK.values())


def _refused(doc: Any, status: int = 400) -> str:
    with pytest.raises(BadRequest) as err:
        parse_table(doc, SCHEMA, 8)
    assert err.value.status == status
    return err.value.message


def test_rows_objects_and_columns_are_read_alike() -> None:
    by_row = parse_table({"instances": [ROW]}, SCHEMA, 8)
    by_name = parse_table({"instances": [dict(reversed(OK.items()))]}, SCHEMA, 8)
    columnar = parse_table({"inputs": {k: [v] for k, v in OK.items()}}, SCHEMA, 8)
    assert by_row == by_name == columnar == [ROW]


def test_an_integral_float_is_an_int_and_an_int_a_float() -> None:
    row = parse_table({"instances": [{**OK, "calls": 4.0, "tenure": 12}]}, SCHEMA, 8)
    assert row[0][:3] == [12, -3, 4.0]


BAD: dict[str, tuple[Any, str]] = {
    "unknown field": (
        {"instances": [{**OK, "age": 3}]},
        'instance 0: unknown feature(s) "age"; this model\'s features: "calls", "online"',
    ),
    "missing field": (
        {"instances": [{k: v for k, v in OK.items() if k != "plan"}]},
        'instance 0: missing feature(s) "plan"',
    ),
    "missing nullable field": (
        {"instances": [{k: v for k, v in OK.items() if k != "rating"}]},
        'instance 0: missing feature(s) "rating" (send null for a missing value',
    ),
    "outside the vocabulary": (
        {"instances": [OK, {**OK, "plan": "gold"}]},
        "instance 1: feature plan = \"gold\" is not in the vocabulary ['basic', 'plus', 'pro']",
    ),
    "null where not allowed": (
        {"instances": [{**OK, "calls": None}]},
        "instance 0: feature calls is null, and this feature may not be null",
    ),
    "a number as a string": (
        {"instances": [{**OK, "tenure": "12.5"}]},
        'instance 0: feature tenure = "12.5" must be a number',
    ),
    "an integer as a string": (
        {"instances": [[*ROW[:2], "4", *ROW[3:]]]},
        'instance 0: feature calls = "4" must be an integer',
    ),
    "rows mixed with objects": (
        {"instances": [ROW, OK]},
        "instance 1: expected a row like the first instance, got an object among rows",
    ),
    "objects mixed with rows": (
        {"instances": [OK, ROW]},
        "instance 1: expected an object like the first instance, got [12.5, -3, 4, true,",
    ),
    "a short row": (
        {"instances": [ROW[:-1]]},
        "instance 0: expected a row of 6 values",
    ),
    "outside the range": (
        {"instances": [{**OK, "spend": 50.5}]},
        "instance 0: feature spend = 50.5 is outside the valid range [-50, 50]",
    ),
    "a fraction for an int": (
        {"instances": [{**OK, "calls": 4.5}]},
        "instance 0: feature calls = 4.5 must be an integer",
    ),
    "a boolean for a number": (
        {"instances": [{**OK, "calls": True}]},
        "instance 0: feature calls = true must be an integer",
    ),
    "a number for a boolean": (
        {"instances": [{**OK, "online": 1}]},
        "instance 0: feature online = 1 must be true or false",
    ),
    "a number for a string vocabulary": (
        {"instances": [{**OK, "plan": 1}]},
        "instance 0: feature plan = 1 is not in the vocabulary",
    ),
    "columnar, unknown feature": (
        {"inputs": {**{k: [v] for k, v in OK.items()}, "x": [1]}},
        '"inputs": unknown feature(s) "x"',
    ),
    "columnar, ragged": (
        {"inputs": {**{k: [v] for k, v in OK.items()}, "plan": ["pro", "pro"]}},
        '"inputs": every feature needs a list of values, all as long',
    ),
    "a scalar instance": ({"instances": [5]}, "instance 0: expected a row like the first"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_each_class_of_bad_input_is_a_400_naming_it(case: str) -> None:
    doc, message = BAD[case]
    assert message in _refused(doc)


def test_the_batch_limit_holds_for_rows_and_columns() -> None:
    assert "exceed the limit of 8" in _refused({"instances": [OK] * 9}, 413)
    assert "exceed the limit of 8" in _refused({"inputs": {k: [v] * 9 for k, v in OK.items()}}, 413)


def test_a_huge_integer_is_out_of_range_not_an_error() -> None:
    body = b'{"instances": [[1, 2, ' + b"9" * 18 + b', true, "pro", null]]}'
    assert f"feature calls = {'9' * 18} is outside the valid range [0, 20]" in _refused(
        decode(body)
    )


def test_classify_examples_are_checked_by_the_schema() -> None:
    doc = {"examples": [{k: [v] for k, v in OK.items() if k != "plan"}], "context": {"plan": "pro"}}
    assert parse_table_examples(doc, SCHEMA, 8) == [ROW]
    with pytest.raises(BadRequest, match='example 0: feature plan = "gold" is not in'):
        parse_table_examples({"examples": [{**OK, "plan": "gold"}]}, SCHEMA, 8)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=7), inner),
    max_leaves=20,
)
INSTANCE = (
    JSON | st.fixed_dictionaries(dict.fromkeys(OK, JSON)) | st.lists(JSON, min_size=6, max_size=6)
)


@settings(max_examples=150, deadline=None)
@given(instances=st.lists(INSTANCE, min_size=1, max_size=4))
def test_any_instances_are_accepted_and_encoded_or_refused_with_a_400(instances: list[Any]) -> None:
    try:
        rows = parse_table({"instances": instances}, SCHEMA, 8)
    except BadRequest as exc:
        refused = exc
    else:
        x = SCHEMA.encode_rows(rows)  # whatever was accepted can be encoded
        assert x.shape == (len(instances), SCHEMA.width)
        return
    assert (refused.status, bool(refused.message)) == (400, True)

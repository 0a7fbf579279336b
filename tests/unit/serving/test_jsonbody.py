"""Hostile and ambiguous request bodies: any nesting, duplicate keys, numbers quoted as sent,
bounded error messages. Pure: decode + parse_instances, as the predict route calls them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.serving.app import parse_instances
from pipelines.serving.jsonbody import QUOTE_CHARS, BadRequest, decode, describe
from pipelines.serving.runtime import Signature
from tests.conftest import default_recursion_limit

SIG = Signature(
    model="digits",
    feature_names=[f"pixel_{i}" for i in range(64)],
    image_shape=(8, 8),
    low=0.0,
    high=16.0,
    classes=list(range(10)),
)
MAX_MESSAGE = 400  # no error message may grow with the request


def check(body: bytes, sig: Signature = SIG) -> str | None:
    """The error the predict route answers for ``body``, or None if it is accepted.

    Only BadRequest with a 4xx status may come out: anything else would be a 500."""
    refused: BadRequest | None = None
    try:
        with default_recursion_limit():
            parse_instances(decode(body), sig, 4, body)
    except BadRequest as exc:
        refused = exc
    if refused is None:
        return None
    assert 400 <= refused.status < 500
    assert refused.message
    assert len(refused.message) <= MAX_MESSAGE, refused.message
    return refused.message


ROW = b"[" + b",".join(b"%d" % (i % 17) for i in range(64)) + b"]"


def nest(depth: int, inner: bytes, open_: bytes, close: bytes) -> bytes:
    return open_ * depth + inner + close * depth


# Where a deep structure is put: every place a decoder or an error message looks.
PLACES = {
    "instance": lambda deep: b'{"instances": [' + deep + b"]}",
    "after a valid row": lambda deep: b'{"instances": [' + ROW + b"," + deep + b"]}",
    "instances": lambda deep: b'{"instances": ' + deep + b"}",
    "cell": lambda deep: b'{"instances": [[' + deep + b"," + b"0," * 63 + b"0]]}",
    "signature_name": lambda deep: (
        b'{"instances": [' + ROW + b'], "signature_name": ' + deep + b"}"
    ),
    "unknown field": lambda deep: b'{"instances": [' + ROW + b'], "x": ' + deep + b"}",
    "top level": lambda deep: deep,
}


@settings(max_examples=400, deadline=None)
@given(
    depth=st.integers(0, 1200),
    place=st.sampled_from(sorted(PLACES)),
    kind=st.sampled_from(["list", "object", "mixed"]),
    inner=st.sampled_from([b"", b"1", b'"x"', b"1e400", b"1" * 400, b"-0.0", b"null"]),
)
@example(depth=1000, place="instance", kind="list", inner=b"")  # a 500 before the fix
@example(depth=1023, place="top level", kind="list", inner=b"")
def test_any_nesting_depth_anywhere_is_a_4xx(
    depth: int, place: str, kind: str, inner: bytes
) -> None:
    if kind == "list":
        deep = nest(depth, inner, b"[", b"]")
    elif kind == "object":
        deep = nest(depth, inner or b"1", b'{"a":', b"}")
    else:
        deep = nest(depth, inner or b"1", b'[{"a":', b"}]")
    check(PLACES[place](deep))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=60,
)


@settings(max_examples=400, deadline=None)
@given(
    doc=st.one_of(
        json_values,
        st.fixed_dictionaries({"instances": json_values}),
        st.fixed_dictionaries({"instances": st.lists(json_values, max_size=5)}),
    )
)
def test_random_documents_are_accepted_or_refused_with_a_bounded_message(doc: Any) -> None:
    check(json.dumps(doc).encode())


# -- duplicate keys ------------------------------------------------------------------------

KEYS = ["a", "b", ":", '"{', "instances"]


@st.composite
def texts(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool]:
    """A JSON text and whether some object in it repeats a key (after unescaping)."""
    if depth >= 3 or draw(st.booleans()):
        value = draw(
            st.one_of(
                st.integers(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(alphabet='ab:{}"[],\\', max_size=6),
                st.none(),
            )
        )
        return json.dumps(value), False
    if draw(st.booleans()):
        items = draw(st.lists(texts(depth + 1), max_size=4))
        return "[" + ",".join(t for t, _ in items) + "]", any(d for _, d in items)
    keys = draw(st.lists(st.sampled_from(KEYS), max_size=4))
    parts, dup = [], len(set(keys)) < len(keys)
    for key in keys:
        escaped = draw(st.booleans())  # "\u0061" is the key "a": a byte comparison misses it
        key_text = (
            '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"' if escaped else json.dumps(key)
        )
        value, value_dup = draw(texts(depth + 1))
        parts.append(f"{key_text}:{value}")
        dup = dup or value_dup
    return "{" + ",".join(parts) + "}", dup


@settings(max_examples=500, deadline=None)
@given(case=texts())
def test_a_duplicate_key_anywhere_is_refused_and_nothing_else_is(case: tuple[str, bool]) -> None:
    text, has_duplicate = case
    if has_duplicate:
        with pytest.raises(BadRequest, match=r"^duplicate key "):
            decode(text.encode())
    else:
        decode(text.encode())


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [ROW], "instances": [ROW]}',
        b'{"instances": [ROW], "\\u0069nstances": [ROW]}',
        b'{"signature_name": "serving_default", "instances": [ROW], '
        b'"signature_name": "serving_default"}',
        b'{"instances": [{"a": 1, "a": 2}]}',
    ],
)
def test_duplicate_keys_are_refused_by_name(body: bytes) -> None:
    message = check(body.replace(b"ROW", ROW))
    assert message is not None
    assert message.startswith('duplicate key "'), message


def test_a_valid_request_with_every_field_is_accepted() -> None:
    assert check(b'{"signature_name": "serving_default", "instances": [' + ROW + b"]}") is None
    assert check(b'{"instances": [' + ROW + b"," + ROW + b"]}") is None


# -- numbers quoted as sent ----------------------------------------------------------------


def body_with(literal: bytes, nested: bool = False) -> bytes:
    cells = [literal] + [b"0"] * 63
    if nested:
        row = (
            b"["
            + b",".join(b"[" + b",".join(cells[r * 8 : (r + 1) * 8]) + b"]" for r in range(8))
            + b"]"
        )
    else:
        row = b"[" + b",".join(cells) + b"]"
    return b'{"instances": [' + ROW + b"," + row + b"]}"


@pytest.mark.parametrize(
    ("literal", "quoted"),
    [
        ("16.0000001", "pixel_0 = 16.0000001 is outside the valid range [0, 16]"),
        ("16.00000010", "= 16.00000010 is"),
        ("1.7e1", "= 1.7e1 is"),
        ("17", "= 17 is"),
        ("-1E-7", "= -1E-7 is"),
        ("123456789012345678901234567890", "= 123456789012345678901234567890 is"),
        ("18446744073709551616", "= 18446744073709551616 is"),
        ("9007199254740993", "= 9007199254740993 is"),
    ],
)
def test_out_of_range_numbers_are_quoted_as_sent(literal: str, quoted: str) -> None:
    for nested in (False, True):
        message = check(body_with(literal.encode(), nested))
        assert message is not None
        assert message.startswith("instance 1: "), message
        assert quoted in message, message


def test_negative_zero_is_quoted_as_sent() -> None:
    sig = Signature(**{**SIG.__dict__, "low": 1.0})
    body = b'{"instances": [[-0.0' + b",1" * 63 + b"]]}"
    message = check(body, sig)
    assert message is not None
    assert "pixel_0 = -0.0 is outside the valid range [1, 16]" in message
    assert check(body) is None  # -0.0 == 0.0: inside [0, 16]


@pytest.mark.parametrize(
    ("literal", "quoted"),
    [
        ("1e400", "the number 1e400 at line 1 column"),
        ("-1.5E+309", "the number -1.5E+309 at line 1 column"),
        ("1" * 5000, "the number 111111111111111111111111111111... (5000 characters) at line"),
    ],
)
def test_numbers_beyond_float64_are_quoted_as_sent(literal: str, quoted: str) -> None:
    message = check(body_with(literal.encode()))
    assert message is not None
    assert quoted in message, message
    assert "beyond the range of a 64-bit float" in message


@settings(max_examples=300, deadline=None)
@given(
    literal=st.from_regex(
        r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,8})?([eE][-+]?[0-9]{1,3})?", fullmatch=True
    )
)
def test_any_refused_number_is_quoted_exactly(literal: str) -> None:
    message = check(body_with(literal.encode()))
    value = float(literal)
    if message is None:
        assert 0.0 <= value <= 16.0
    else:
        assert len(literal) > QUOTE_CHARS - 10 or re.search(
            rf"(= |number ){re.escape(literal)} (is|at)", message
        ), (literal, message)


def test_a_type_error_quotes_the_instance_as_sent() -> None:
    message = check(b'{"instances": [[1.50, 2E0, "x"]]}')
    assert message is not None
    assert 'got [1.50, 2E0, "x"]' in message, message


# -- bounded messages ----------------------------------------------------------------------


def test_many_unknown_fields_are_summarised() -> None:
    doc = {"instances": [[0] * 64], **{f"field_{i:04d}": i for i in range(1000)}}
    message = check(json.dumps(doc).encode())
    assert message is not None
    assert (
        '"field_0000", "field_0001", "field_0002", "field_0003", "field_0004" and 995 more'
        in message
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"' + b"k" * 100_000 + b'": 1}',
        b'{"instances": [["' + b"v" * 100_000 + b'"]]}',
        b'{"instances": [[' + b"17," * 30_000 + b"17]]}",
        b'{"instances": [' + b"[" * 500 + b"]" * 500 + b"]}",
        b'{"instances": [[' + b"1" * 100_000 + b"]]}",
    ],
)
def test_huge_keys_and_values_are_quoted_briefly(body: bytes) -> None:
    assert check(body) is not None  # check() asserts the bound


def test_describe_is_bounded_and_iterative() -> None:
    deep: Any = []
    for _ in range(100_000):  # far beyond the recursion limit
        deep = [deep]
    assert describe(deep) == "[" * (QUOTE_CHARS - 3) + "..."
    assert describe({"a": [1, 2.5, None, True, "s"]}) == '{"a": [1, 2.5, null, true, "s"]}'
    assert describe(10**5000) == "a very large integer"
    assert len(describe(list(range(10**6)))) == QUOTE_CHARS

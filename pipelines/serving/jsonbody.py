"""Request bodies: strict JSON decoding, and error messages that show what the client sent.

orjson decodes every body (fast, and it refuses NaN, Infinity and nesting deeper than 1024).
Two things it cannot do are done here, off the common path:

- It keeps the last of duplicate keys silently, so ``{"instances": A, "instances": B}`` would be
  read one way by us and maybe the other way by a proxy or a log pipeline in front of us. Such a
  body is refused. The check costs one ``bytes.count`` per request; only a body that has more
  colons than its top-level object has keys is decoded a second time, by the standard library,
  whose ``object_pairs_hook`` sees every key.
- It turns numbers into floats, so an error would quote ``16.0000001`` or ``1e400`` rounded.
  Error messages re-read the body with the standard library's number hooks and quote the
  literal exactly as it was sent.

Every quote of client data is bounded (``describe``, ``quote_names``): an error body never grows
with the request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

QUOTE_CHARS = 40  # the longest quote of a client value in an error message
QUOTE_NAMES = 5  # the most client keys named in one error message


class BadRequest(Exception):
    """A request the server refuses, with the HTTP status and the message the client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Literal(str):
    """A JSON number, as the characters the client sent."""


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Punctuation(str):
    """Brackets and separators that ``describe`` emits between values."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen.add(key)
    return dict(pairs)


_AS_SENT = json.JSONDecoder(
    parse_float=Literal, parse_int=Literal, parse_constant=Literal, object_pairs_hook=_unique_pairs
)
_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def decode(body: bytes) -> Any:
    """The JSON document in ``body``; BadRequest(400) for invalid JSON or a duplicate key."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, _syntax_error(body, exc)) from None
    # Each key in the text is followed by a colon outside any string, so a body with no more
    # colons than its top-level object has distinct keys has no duplicate anywhere.
    if body.count(b":") != (len(doc) if type(doc) is dict else 0):
        as_sent(body)  # raises on a duplicate
    return doc


def as_sent(body: bytes) -> Any:
    """The body decoded again with every number a ``Literal``; BadRequest on a duplicate key.

    Call only after ``decode`` accepted the body: then the structure is the same as orjson's.
    """
    try:
        return _AS_SENT.decode(body.decode("utf-8"))
    except _Duplicate as dup:
        raise BadRequest(
            400,
            f"duplicate key {describe(dup.key)} in a JSON object: send each "
            "key once (parsers disagree on which copy wins)",
        ) from None
    except RecursionError:
        # orjson accepts 1024 levels, the standard library fewer; no valid request has more
        # than four, so the client can be told plainly.
        raise BadRequest(
            400,
            "the JSON is nested too deeply to be checked for duplicate keys; "
            "a request has at most 4 levels",
        ) from None


def _syntax_error(body: bytes, exc: orjson.JSONDecodeError) -> str:
    if "infinity" in exc.msg:  # a number beyond float64, e.g. 1e400 or a 400-digit integer
        found = _NUMBER.match(body, exc.pos)
        number = quote_text(found.group().decode()) if found else "a number"
        return (
            f"the number {number} at line {exc.lineno} column {exc.colno} is beyond the "
            "range of a 64-bit float"
        )
    return f"the body is not valid JSON: {exc}"


def quote_text(text: str) -> str:
    """``text`` cut to a bounded length, saying how long it was."""
    if len(text) <= QUOTE_CHARS:
        return text
    return f"{text[: QUOTE_CHARS - 10]}... ({len(text)} characters)"


def quote_names(names: Iterable[str]) -> str:
    """Keys sent by the client, for a message: a few of them, then how many more."""
    names = sorted(names)
    shown = ", ".join(describe(n) for n in names[:QUOTE_NAMES])
    more = len(names) - QUOTE_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _scalar(value: Any) -> str:
    if isinstance(value, Literal):
        return quote_text(str(value))
    if isinstance(value, str):
        return json.dumps(value[:QUOTE_CHARS])  # escapes quotes, newlines and lone surrogates
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # beyond Python's digit limit for int -> str
            return "a very large integer"
    if isinstance(value, float):
        return json.dumps(value)  # the shortest text that reads back as the same float
    return type(value).__name__


def _items(value: list[Any] | dict[str, Any]) -> Iterator[Any]:
    if isinstance(value, list):
        for i, v in enumerate(value):
            if i:
                yield _Punctuation(", ")
            yield v
        yield _Punctuation("]")
    else:
        for i, (k, v) in enumerate(value.items()):
            yield _Punctuation(", " if i else "")
            yield k
            yield _Punctuation(": ")
            yield v
        yield _Punctuation("}")


def describe(value: Any) -> str:
    """A JSON-like preview of ``value``, at most ``QUOTE_CHARS`` characters.

    Iterative, and it stops as soon as the preview is long enough: a value nested a thousand
    levels deep, or a list of a million numbers, costs no more than a short one.
    """
    parts: list[str] = []
    size = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack and size <= QUOTE_CHARS:
        item = next(stack[-1], stack)  # the stack itself marks an exhausted iterator
        if item is stack:
            stack.pop()
            continue
        if isinstance(item, _Punctuation):
            text = str(item)
        elif isinstance(item, (list, dict)):
            text = "[" if isinstance(item, list) else "{"
            stack.append(_items(item))
        else:
            text = _scalar(item)
        parts.append(text)
        size += len(text)
    preview = "".join(parts)
    return preview if len(preview) <= QUOTE_CHARS else preview[: QUOTE_CHARS - 3] + "..."

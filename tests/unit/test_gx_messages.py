"""How GX's results become messages: nested per-metric exceptions and column-list causes."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.adapters.gx import _column_list_cause, _exception_messages


def _info(message: str, raised: bool = True) -> dict[str, Any]:
    return {
        "exception_traceback": "Traceback ...",
        "exception_message": message,
        "raised_exception": raised,
    }


@pytest.mark.parametrize(
    ("info", "messages"),
    [
        (None, []),
        ({}, []),
        (_info("boom"), ["boom"]),
        (_info("", raised=False) | {"exception_message": None}, []),
        # GX 1.x: when a metric fails to resolve, one entry per metric id, one level down.
        (
            {
                "MetricConfigurationID(metric_name='column_values.nonnull.condition', ...)": _info(
                    'Error: The column "pixel_5" in BatchData does not exist.'
                ),
                "MetricConfigurationID(metric_name='table.row_count', ...)": _info(
                    'Error: The column "pixel_5" in BatchData does not exist.'
                ),
            },
            ['Error: The column "pixel_5" in BatchData does not exist.'],
        ),
    ],
)
def test_exception_messages_direct_and_nested(info: Any, messages: list[str]) -> None:
    assert _exception_messages(info) == messages


@pytest.mark.parametrize(
    ("found", "cause"),
    [
        (["a", "c"], "missing column(s) ['b']"),
        (["a", "b", "c", "x"], "unexpected column(s) ['x']"),
        (["a", "B", "c"], "missing column(s) ['b']; unexpected column(s) ['B']"),
        (["a", "c", "b"], "columns out of order from 'b' on"),
        (["a", "b", "c", "c"], "repeated column(s) ['c']"),
    ],
)
def test_column_list_cause_names_the_difference(found: list[str], cause: str) -> None:
    assert cause in _column_list_cause(["a", "b", "c"], found)

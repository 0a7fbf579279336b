"""The diabetes expectation suite (Great Expectations 1.x), kept with the model it guards.

The feature schema in model.yaml (types, ranges, vocabularies, nulls) is checked for every
model by validate itself; this suite adds what the table as a whole must satisfy:
  rows         on each split: the columns, the row count, the label's nulls and values, ids
  balance      on each split's label distribution: class fraction bounds (classification)
  cross_split  on all splits stacked: no example (row_id) in two splits
Thresholds come from ``data`` in model.yaml, so a fork tunes numbers without touching code.
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe


def rows(data: Any) -> list[Any]:
    """The suite run on each split."""
    label = data.label.column
    names = [f.name for f in data.features]
    out: list[Any] = [
        # A set, not an ordered list: the table may hold columns the model does not use.
        gxe.ExpectTableColumnsToMatchSet(column_set=["row_id", *names, label], exact_match=False),
        gxe.ExpectTableRowCountToBeBetween(min_value=data.expectations.min_rows),
        gxe.ExpectColumnValuesToNotBeNull(column=label),
        gxe.ExpectColumnValuesToNotBeNull(column="row_id"),
        gxe.ExpectColumnValuesToBeUnique(column="row_id"),
    ]
    classes = getattr(data.label, "classes", None)
    if classes:
        out += [
            gxe.ExpectColumnValuesToBeInSet(column=label, value_set=classes),
            gxe.ExpectColumnDistinctValuesToContainSet(column=label, value_set=classes),
        ]
    return out


def balance(data: Any) -> list[Any]:
    """The suite run on each split's class distribution: every class fraction within bounds."""
    e = data.expectations
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="fraction", min_value=e.class_fraction_min, max_value=e.class_fraction_max
        ),
    ]


def cross_split(data: Any) -> list[Any]:
    """The suite run on all splits stacked: no example in two splits (leakage)."""
    return [
        gxe.ExpectColumnValuesToBeUnique(
            column="row_id",
            description="leakage: the same example id (row_id) appears in more than one split",
        ),
    ]

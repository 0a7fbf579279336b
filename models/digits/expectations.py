"""The digits expectation suite (Great Expectations 1.x), kept with the model it guards.

Three suites, run by one Checkpoint:
  rows         on each split: schema, types, nulls, ranges, label set, duplicates, size
  balance      on each split's label distribution (one row per class): class fraction bounds
  cross_split  on all splits stacked: neither the same example (row_id) nor the same image may
               appear in two splits (leakage by identity and by content)
Thresholds come from ``data`` in model.yaml, so a fork tunes numbers without touching code.
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe


def rows(data: Any) -> list[Any]:
    """The suite run on each split: schema, types, nulls, ranges, label set, duplicates, size."""
    features = data.features.columns
    label = data.label.column
    columns = ["row_id", *features, label]
    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=columns),
        gxe.ExpectTableRowCountToBeBetween(min_value=data.expectations.min_rows),
        gxe.ExpectColumnValuesToBeOfType(column=label, type_="int64"),
        gxe.ExpectColumnValuesToNotBeNull(column=label),
        gxe.ExpectColumnValuesToBeInSet(column=label, value_set=data.label.classes),
        # ContainSet, not EqualSet: unknown labels are in_set's job, and GX 1.x cannot render an
        # EqualSet failure with unexpected values in Data Docs (it logs a traceback instead).
        gxe.ExpectColumnDistinctValuesToContainSet(column=label, value_set=data.label.classes),
        gxe.ExpectColumnValuesToBeOfType(column="row_id", type_="int64"),
        gxe.ExpectColumnValuesToNotBeNull(column="row_id"),
        gxe.ExpectColumnValuesToBeUnique(column="row_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=features),
    ]
    for col in features:
        out += [
            gxe.ExpectColumnValuesToBeOfType(column=col, type_="float64"),
            gxe.ExpectColumnValuesToNotBeNull(column=col),
            gxe.ExpectColumnValuesToBeBetween(
                column=col, min_value=data.features.min, max_value=data.features.max
            ),
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
    """The suite run on all splits stacked: no example or image in two splits (leakage)."""
    return [
        gxe.ExpectColumnValuesToBeUnique(
            column="row_id",
            description="leakage: the same example id (row_id) appears in more than one split",
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=data.features.columns,
            description="leakage: the same image appears in more than one split",
        ),
    ]

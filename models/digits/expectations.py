"""The digits expectation suite (Great Expectations 1.x), kept with the model it guards.

Three suites, run by one Checkpoint:
  rows         on each split: schema, types, nulls, ranges, label set, duplicates, size
  balance      on each split's label distribution (one row per class): class fraction bounds
  cross_split  on all splits stacked: the same image may not appear in two splits (leakage)
Thresholds come from ``data`` in model.yaml, so a fork tunes numbers without touching code.
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe


def rows(data: Any) -> list[Any]:
    features = data.features.columns
    label = data.label.column
    columns = ["row_id", *features, label]
    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=columns),
        gxe.ExpectTableRowCountToBeBetween(min_value=data.expectations.min_rows),
        gxe.ExpectColumnValuesToBeOfType(column=label, type_="int64"),
        gxe.ExpectColumnValuesToNotBeNull(column=label),
        gxe.ExpectColumnValuesToBeInSet(column=label, value_set=data.label.classes),
        gxe.ExpectColumnDistinctValuesToEqualSet(column=label, value_set=data.label.classes),
        gxe.ExpectColumnValuesToBeUnique(column="row_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=features),
    ]
    for col in features:
        out += [
            gxe.ExpectColumnValuesToBeOfType(column=col, type_="float64"),
            gxe.ExpectColumnValuesToNotBeNull(column=col),
            gxe.ExpectColumnValuesToBeBetween(
                column=col, min_value=data.features.min, max_value=data.features.max),
        ]
    return out


def balance(data: Any) -> list[Any]:
    e = data.expectations
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="fraction", min_value=e.class_fraction_min, max_value=e.class_fraction_max),
    ]


def cross_split(data: Any) -> list[Any]:
    return [gxe.ExpectCompoundColumnsToBeUnique(column_list=data.features.columns)]

"""The diabetes expectation suite (Great Expectations 1.x), kept with the model it guards.

The feature schema in model.yaml (types, ranges, the sex vocabulary, no nulls) and the
target's range are checked for every model by validate itself. This suite adds what the table
as a whole must satisfy:
  rows         on each split: exactly the bundled table's columns, enough rows, unique ids,
               and a target distribution like the one the model was designed on
  balance      a classifier's class shares: not run for a regressor
  cross_split  on all splits stacked: no example (row_id) in two splits
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe

# The bundled table's disease progression: mean 152, standard deviation 77 over 442 patients.
# A split's mean or spread far from these is another population or a unit change (a scaled
# copy of the dataset has values near 0), which a range check alone would let through.
TARGET_MEAN = (120.0, 185.0)
TARGET_STDEV = (55.0, 100.0)


def rows(data: Any) -> list[Any]:
    """The suite run on each split."""
    label = data.label.column
    names = [f.name for f in data.features]
    return [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=["row_id", *names, label]),
        gxe.ExpectTableRowCountToBeBetween(min_value=data.expectations.min_rows),
        gxe.ExpectColumnValuesToNotBeNull(column="row_id"),
        gxe.ExpectColumnValuesToBeUnique(column="row_id"),
        gxe.ExpectColumnMeanToBeBetween(
            column=label, min_value=TARGET_MEAN[0], max_value=TARGET_MEAN[1]
        ),
        gxe.ExpectColumnStdevToBeBetween(
            column=label, min_value=TARGET_STDEV[0], max_value=TARGET_STDEV[1]
        ),
    ]


def balance(data: Any) -> list[Any]:
    """A classifier's class shares; validate does not run this suite for a regressor."""
    return []


def cross_split(data: Any) -> list[Any]:
    """The suite run on all splits stacked: no example in two splits (leakage)."""
    return [
        gxe.ExpectColumnValuesToBeUnique(
            column="row_id",
            description="leakage: the same example id (row_id) appears in more than one split",
        ),
    ]

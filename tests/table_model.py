"""A small synthetic classification table with named features of every type, and a model folder
for it (model.yaml, a Dense network, an expectation suite): what tests of the named-feature
schema train, validate and serve. It lives in a temporary copy of the repository, never in
models/."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipelines.serving.features import TableSchema

NAME = "churn"

FEATURES: list[dict[str, Any]] = [
    {"name": "tenure", "type": "float", "min": 0, "max": 100},
    {"name": "spend", "type": "float", "min": -50, "max": 50},
    {"name": "calls", "type": "int", "min": 0, "max": 20},
    {"name": "online", "type": "bool"},
    {"name": "plan", "type": "categorical", "values": ["basic", "plus", "pro"]},
    {"name": "rating", "type": "float", "min": 0, "max": 5, "nullable": True},
]

MODEL: dict[str, Any] = {
    "name": NAME,
    "description": "a synthetic churn table: every feature type, one nullable",
    "task": "classification",
    "data": {
        "source": {"kind": "file", "path": f"models/{NAME}/table.csv"},
        "features": FEATURES,
        "label": {"column": "churned", "classes": [0, 1]},
        "split": {"validation": 0.2, "test": 0.2, "seed": 7},
        "expectations": {"min_rows": 20, "class_fraction_min": 0.2, "class_fraction_max": 0.8},
    },
    "training": {
        "architecture": "architecture.py",
        "epochs": 25,
        "batch_size": 16,
        "learning_rate": 0.02,
        "seed": 3,
        "threads": 1,
        "params": {"units": 16},
    },
    "export": {"quantization": "none"},
    "gate": {
        "thresholds": {"accuracy": 0.75, "macro_f1": 0.7},
        "per_class": {"min_recall": 0.5},
        "change": {"on_missing_baseline": "pass", "bootstrap_resamples": 200},
    },
    "deploy": {"image_repository": f"mlops/{NAME}"},
    "monitoring": {"window_instances": 20, "bootstrap_windows": 100},
}

ARCHITECTURE = '''\
"""A tiny Dense network over the encoded named features."""

from typing import Any


def build_model(
    keras: Any, input_shape: tuple[int, ...], num_classes: int, params: dict[str, Any]
) -> Any:
    model = keras.Sequential(name="churn_mlp")
    model.add(keras.Input(shape=input_shape, name="features"))
    model.add(keras.layers.Dense(params["units"], activation="relu"))
    model.add(keras.layers.Dense(num_classes, activation="softmax", name="probabilities"))
    return model
'''

# The model's own suite: the table's shape and the label. The named features' types, ranges,
# vocabularies and nulls are checked by the expectations validate derives from the schema.
EXPECTATIONS = '''\
"""The churn table's expectation suite."""

from typing import Any

import great_expectations.expectations as gxe


def rows(data: Any) -> list[Any]:
    label = data.label.column
    return [
        gxe.ExpectTableColumnsToMatchOrderedList(
            column_list=["row_id", *data.feature_columns, label]
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=data.expectations.min_rows),
        gxe.ExpectColumnValuesToNotBeNull(column=label),
        gxe.ExpectColumnValuesToBeInSet(column=label, value_set=data.label.class_list),
        gxe.ExpectColumnValuesToBeUnique(column="row_id"),
    ]


def balance(data: Any) -> list[Any]:
    e = data.expectations
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="fraction", min_value=e.class_fraction_min, max_value=e.class_fraction_max
        )
    ]


def cross_split(data: Any) -> list[Any]:
    return [gxe.ExpectColumnValuesToBeUnique(column="row_id")]
'''


def schema() -> TableSchema:
    """The model's feature schema, with its preprocessing."""
    from pipelines.config import ModelConfig

    out = ModelConfig.model_validate(MODEL).data.feature_schema()
    assert isinstance(out, TableSchema)
    return out


def model_config(**changes: Any) -> dict[str, Any]:
    """The model.yaml document, with top-level keys replaced."""
    doc = copy.deepcopy(MODEL)
    doc.update(changes)
    return doc


def table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """The synthetic table: churn depends on tenure, spend, calls, the plan and the rating, so a
    small network learns it well above chance."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 100, rows).round(2)
    spend = rng.uniform(-50, 50, rows).round(2)
    calls = rng.integers(0, 21, rows)
    online = rng.random(rows) < 0.5
    plan = rng.choice(["basic", "plus", "pro"], rows)
    rating = rng.uniform(0, 5, rows).round(1)
    rating_null = rng.random(rows) < 0.15
    score = (
        (50 - tenure) / 25
        + spend / 25
        + (calls - 10) / 5
        + np.where(plan == "basic", 1.0, np.where(plan == "pro", -1.0, 0.0))
        + np.where(rating_null, 0.0, (2.5 - rating) / 2)
    )
    return pd.DataFrame(
        {
            "tenure": tenure,
            "spend": spend,
            "calls": calls,
            "online": online,
            "plan": plan,
            "rating": np.where(rating_null, np.nan, rating),
            "churned": (score > 0).astype(np.int64),
        }
    )


def write_model(root: Path, rows: int = 300, doc: dict[str, Any] | None = None) -> Path:
    """models/churn/ and its CSV in the repository at ``root``; the model folder."""
    folder = root / "models" / NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(doc or MODEL, sort_keys=False))
    (folder / "architecture.py").write_text(ARCHITECTURE)
    (folder / "expectations.py").write_text(EXPECTATIONS)
    table(rows).to_csv(folder / "table.csv", index=False)
    return folder

"""Which models a change affects (core/changes.py): pure, values in, values out."""

from __future__ import annotations

import pytest

from pipelines.config.schema import DNS_LABEL
from pipelines.core.changes import MODEL_NAME, affected_models, invalid_model_names

MODELS = ["diabetes", "digits"]


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["models/digits/model.yaml"], ["digits"]),
        (["models/diabetes/architecture.py", "models/digits/expectations.py"], MODELS),
        (["models/digits/a.py", "models/digits/b.py"], ["digits"]),
        # Shared code and data affect every model.
        (["pipelines/core/gating.py"], MODELS),
        (["models/digits/model.yaml", "data.dvc"], MODELS),
        (["constraints.txt"], MODELS),
        (["datasets/churn.csv.dvc"], MODELS),
        # A model folder that no longer exists (deleted) has nothing to report.
        (["models/iris/model.yaml"], []),
        # A file directly in models/ is no model's.
        (["models/README.md"], []),
        ([], []),
    ],
)
def test_affected_models(changed: list[str], expected: list[str]) -> None:
    assert affected_models(changed, MODELS) == expected


def test_a_rename_out_of_a_model_counts_both_paths() -> None:
    assert affected_models(["models/digits/x.csv", "datasets/x.csv"], MODELS) == MODELS


def test_no_models_means_nothing_is_affected() -> None:
    assert affected_models(["pipelines/cli.py"], []) == []


def test_model_names_are_dns_labels() -> None:
    assert MODEL_NAME.pattern == DNS_LABEL
    assert invalid_model_names(["digits", "diabetes-2", "a"]) == []
    bad = ["Digits", "-x", "x-", "a_b", "a b", "a/b", "", "$(id)", "x" * 64, "é"]
    assert invalid_model_names(bad) == sorted(bad)

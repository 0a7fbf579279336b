"""package.signature: the serving contract filled in from model.yaml's task and evaluate's
predictions, for a classifier (byte for byte as before regressors) and for a regressor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.adapters.artifacts import PREDICTIONS
from pipelines.config import load_model
from pipelines.stages.package import SELF_TEST_EXAMPLES, signature
from tests.conftest import edit_model_yaml
from tests.unit.test_config import REGRESSION, _without_nulls

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


def _write_split_and_predictions(root: Path, predicted: list[float] | list[int]) -> None:
    ws = load_model(root, "digits")
    n = len(predicted)
    rng = np.random.default_rng(0)
    test = pd.DataFrame(
        {
            "row_id": np.arange(n),
            **{c: rng.integers(0, 17, n).astype(float) for c in ws.model.data.feature_columns},
        }
    )
    ws.split_path("test").parent.mkdir(parents=True)
    test.to_parquet(ws.split_path("test"))
    ws.artifacts("evaluate").mkdir(parents=True)
    pd.DataFrame({"row_id": np.arange(n), "predicted": predicted}).to_parquet(
        ws.artifacts("evaluate") / PREDICTIONS
    )


def test_a_regressors_signature_records_values_and_its_task(root: Path) -> None:
    edit_model_yaml(root, REGRESSION)
    _without_nulls(root)
    values = [0.25, 3.5, 8.125, 1.0, 4.75, 6.0, 2.0]
    _write_split_and_predictions(root, values)
    sig = signature(load_model(root, "digits"), "a" * 64)
    assert sig.task == "regression"
    assert sig.classes == []
    assert sig.self_test_classes == []
    assert sig.self_test_values == values[:SELF_TEST_EXAMPLES]
    assert len(sig.self_test_instances) == SELF_TEST_EXAMPLES
    raw = json.loads(sig.to_json())
    assert (raw["task"], raw["self_test_values"]) == ("regression", values[:SELF_TEST_EXAMPLES])


def test_a_classifiers_signature_has_no_task_or_values_keys(root: Path) -> None:
    _write_split_and_predictions(root, [3, 1, 4, 1, 5, 9, 2])
    sig = signature(load_model(root, "digits"), "a" * 64)
    assert sig.self_test_classes == [3, 1, 4, 1, 5]
    raw = json.loads(sig.to_json())
    assert "task" not in raw
    assert "self_test_values" not in raw

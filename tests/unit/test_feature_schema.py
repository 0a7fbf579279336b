"""No silent defaults, and the named-feature schema: each missing key and each kind of invalid
schema is refused (exit 2) with a message naming it, and nothing is written."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipelines.cli import main
from pipelines.config import load_model
from pipelines.config.schema import REQUIRED_KEYS
from pipelines.errors import ConfigError
from pipelines.serving.features import ImageSchema, TableSchema
from tests import table_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    (tmp_path / "pyproject.toml").write_text("")
    table_model.write_model(tmp_path, rows=30)
    return tmp_path


def _digits(root: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((root / "models/digits/model.yaml").read_text())
    return doc


def _write(root: Path, doc: dict[str, Any], model: str = "digits") -> None:
    (root / "models" / model / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _refused(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], model: str
) -> str:
    """`mlops config --model M` exits 2 and writes nothing; its message."""
    before = _files(root)
    monkeypatch.chdir(root)
    assert main(["config", "--model", model]) == 2
    assert _files(root) == before
    return capsys.readouterr().err


@pytest.mark.parametrize("keys", [k for k, _ in REQUIRED_KEYS], ids=".".join)
def test_each_required_key_is_refused_when_missing(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keys: tuple[str, ...],
) -> None:
    doc = _digits(root)
    node = doc
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    _write(root, doc)
    err = _refused(root, monkeypatch, capsys, "digits")
    dotted = ".".join(keys)
    assert f"{dotted}: required, not stated" in err
    assert "1 invalid setting(s)" in err
    assert "hint: state each required key" in err


def test_a_name_alone_is_refused_naming_every_missing_key(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(root, {"name": "digits"})
    err = _refused(root, monkeypatch, capsys, "digits")
    for keys, _ in REQUIRED_KEYS:
        assert f"{'.'.join(keys)}: required, not stated" in err
    assert f"{len(REQUIRED_KEYS)} invalid setting(s)" in err


def test_missing_keys_and_other_errors_are_reported_together(root: Path) -> None:
    doc = _digits(root)
    del doc["task"]
    doc["training"]["epochs"] = 0
    _write(root, doc)
    with pytest.raises(ConfigError) as err:
        load_model(root, "digits")
    assert "task: required" in str(err.value)
    assert "training.epochs" in str(err.value)


def test_task_is_one_of_the_known_tasks(root: Path) -> None:
    doc = _digits(root)
    doc["task"] = "ranking"
    _write(root, doc)
    with pytest.raises(ConfigError, match="task: Input should be 'classification'"):
        load_model(root, "digits")


def test_config_prints_the_resolved_configuration(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(root)
    assert main(["config", "--model", table_model.NAME]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["task"] == "classification"
    assert resolved["data"]["features"][5] == {
        "name": "rating",
        "type": "float",
        "min": 0.0,
        "max": 5.0,
        "values": None,
        "nullable": True,
    }
    assert resolved["deploy"]["image_repository"] == "mlops/churn"
    assert resolved["serving"]["max_batch"] == 256  # defaults are filled in and shown


def test_the_digits_shorthand_and_a_named_table_both_load(root: Path) -> None:
    digits = load_model(root, "digits").model.data
    assert isinstance(digits.feature_schema(), ImageSchema)
    assert digits.feature_columns[:2] == ["pixel_0", "pixel_1"]
    table = load_model(root, table_model.NAME).model.data
    schema = table.feature_schema()
    assert isinstance(schema, TableSchema)
    assert table.feature_columns == ["tenure", "spend", "calls", "online", "plan", "rating"]
    assert schema.encoded_names == [
        "tenure",
        "spend",
        "calls",
        "online",
        "plan=basic",
        "plan=plus",
        "plan=pro",
        "rating",
        "rating:null",
    ]


def _with_features(features: list[dict[str, Any]], label: str = "churned") -> dict[str, Any]:
    doc = copy.deepcopy(table_model.MODEL)
    doc["data"]["features"] = features
    doc["data"]["label"]["column"] = label
    return doc


INVALID: dict[str, tuple[list[dict[str, Any]], str]] = {
    "duplicate names": (
        [{"name": "a", "type": "bool"}, {"name": "a", "type": "float", "min": 0, "max": 1}],
        "feature(s) a listed twice",
    ),
    "bad name": ([{"name": "2x", "type": "bool"}], "data.features.0.name: String should match"),
    "min not below max": (
        [{"name": "a", "type": "float", "min": 3, "max": 3}],
        "feature 'a': min 3 must be below max 3",
    ),
    "numeric without a range": (
        [{"name": "a", "type": "int", "min": 0}],
        "feature 'a' (int) needs min and max",
    ),
    "empty vocabulary": (
        [{"name": "a", "type": "categorical", "values": []}],
        "feature 'a': a categorical feature needs a non-empty values list",
    ),
    "categorical without a vocabulary": (
        [{"name": "a", "type": "categorical"}],
        "feature 'a': a categorical feature needs a non-empty values list",
    ),
    "duplicates in the vocabulary": (
        [{"name": "a", "type": "categorical", "values": ["x", "y", "x"]}],
        "feature 'a': values lists x more than once",
    ),
    "mixed vocabulary": (
        [{"name": "a", "type": "categorical", "values": ["x", 1]}],
        "feature 'a': values must be all strings or all integers",
    ),
    "range on a categorical": (
        [{"name": "a", "type": "categorical", "values": ["x"], "min": 0, "max": 1}],
        "feature 'a': min/max are for float and int features, not categorical",
    ),
    "range on a bool": (
        [{"name": "a", "type": "bool", "max": 1}],
        "feature 'a': min/max are for float and int features, not bool",
    ),
    "vocabulary on a numeric": (
        [{"name": "a", "type": "float", "min": 0, "max": 1, "values": [0, 1]}],
        "feature 'a': values (a vocabulary) is for categorical features only",
    ),
    "unknown type": ([{"name": "a", "type": "date"}], "data.features.0.type: Input should be"),
    "unknown key": (
        [{"name": "a", "type": "bool", "default": True}],
        "data.features.0.default: unknown key (allowed here: max, min, name, nullable, type, "
        "values)",
    ),
    "label listed as a feature": (
        [{"name": "churned", "type": "bool"}],
        "the label column 'churned' is listed as a feature",
    ),
    "no features": ([], "the list of named features is empty"),
    "an empty string in the vocabulary": (
        [{"name": "a", "type": "categorical", "values": ["x", ""]}],
        "feature 'a': vocabulary entry '' must be 1 to 100 characters",
    ),
    "a vocabulary too large": (
        [{"name": "a", "type": "categorical", "values": list(range(1001))}],
        "data.features.0.values: List should have at most 1000 items",
    ),
    "a float vocabulary": (
        [{"name": "a", "type": "categorical", "values": [0.5, 1.5]}],
        "data.features.0.values.0",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_each_kind_of_invalid_schema_is_refused_naming_the_feature(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    features, fragment = INVALID[case]
    _write(root, _with_features(features), table_model.NAME)
    err = _refused(root, monkeypatch, capsys, table_model.NAME)
    assert fragment in err, err


def test_the_image_shorthand_states_every_key(root: Path) -> None:
    doc = _digits(root)
    del doc["data"]["features"]["min"]
    _write(root, doc)
    with pytest.raises(ConfigError, match=r"data\.features\.min: Field required"):
        load_model(root, "digits")


def test_the_schema_documents_both_forms() -> None:
    schema = json.dumps(load_model(ROOT, "digits").model.model_json_schema())
    assert "NamedFeature" in schema
    assert "FeatureSpec" in schema


def test_reference_statistics_describe_the_numeric_and_bool_features() -> None:
    from pipelines.config import ModelConfig, Workspace
    from pipelines.stages.validate import reference_stats

    only_categorical = _with_features([{"name": "plan", "type": "categorical", "values": ["a"]}])
    ws = Workspace(Path("/nonexistent"), ModelConfig.model_validate(only_categorical))
    frame = pd.DataFrame({"plan": ["a", "a"], "churned": [0, 1]})
    assert reference_stats(ws, frame).features == {}
    ws = Workspace(Path("/nonexistent"), ModelConfig.model_validate(table_model.MODEL))
    stats = reference_stats(ws, table_model.table(40))
    assert set(stats.features) == {"tenure", "spend", "calls", "online", "rating"}
    assert 0 < stats.features["online"]["mean"] < 1

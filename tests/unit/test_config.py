import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.config import json_schema, load_model
from pipelines.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


def write(root: Path, text: str) -> None:
    (root / "models/digits/model.yaml").write_text(text)


def test_default_model_loads() -> None:
    ws = load_model(ROOT, "digits")
    assert ws.model.data.features.count == 64
    assert ws.model.data.features.columns[:2] == ["pixel_0", "pixel_1"]
    assert ws.model.export.quantization == "dynamic_range"


def test_unknown_key_names_file_key_and_allowed_keys(root: Path) -> None:
    text = (root / "models/digits/model.yaml").read_text()
    write(root, text.replace("  epochs: 15", "  epochs: 15\n  epoch: 3"))
    with pytest.raises(ConfigError) as err:
        load_model(root, "digits")
    msg = str(err.value)
    assert "models/digits/model.yaml" in msg
    assert "training.epoch: unknown key" in msg
    assert "allowed here: architecture, batch_size, distribution, epochs" in msg
    assert err.value.exit_code == 2


def test_wrong_type_names_key_and_value(root: Path) -> None:
    text = (root / "models/digits/model.yaml").read_text()
    write(root, text.replace("epochs: 15", "epochs: many"))
    with pytest.raises(ConfigError, match=r"training\.epochs: .*integer.*'many'"):
        load_model(root, "digits")


def test_enum_lists_what_is_allowed(root: Path) -> None:
    text = (root / "models/digits/model.yaml").read_text()
    write(root, text.replace("quantization: dynamic_range", "quantization: int4"))
    with pytest.raises(ConfigError, match=r"export\.quantization: .*'none', 'dynamic_range'"):
        load_model(root, "digits")


def test_malformed_yaml(root: Path) -> None:
    write(root, "name: digits\ntraining: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model(root, "digits")


def test_top_level_must_be_a_mapping(root: Path) -> None:
    write(root, "- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_model(root, "digits")


def test_name_must_match_folder(root: Path) -> None:
    text = (root / "models/digits/model.yaml").read_text()
    write(root, text.replace("name: digits", "name: other"))
    with pytest.raises(ConfigError, match="folder is 'digits'"):
        load_model(root, "digits")


def test_semantic_checks(root: Path) -> None:
    text = (root / "models/digits/model.yaml").read_text()
    write(root, text.replace("image_shape: [8, 8]", "image_shape: [8, 9]"))
    with pytest.raises(ConfigError, match="does not hold 64 features"):
        load_model(root, "digits")


def test_unknown_model_lists_known_ones(root: Path) -> None:
    with pytest.raises(ConfigError, match="known models: diabetes, digits"):
        load_model(root, "nope")


def test_second_model_needs_only_a_folder(root: Path) -> None:
    shutil.copytree(root / "models/digits", root / "models/letters")
    text = (root / "models/letters/model.yaml").read_text()
    (root / "models/letters/model.yaml").write_text(text.replace("name: digits", "name: letters"))
    assert load_model(root, "letters").data_dir == root.resolve() / "data/letters"


def test_schema_forbids_unknown_keys() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert "training" in schema["properties"]


def test_cli_prints_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "ModelConfig"


def test_cli_config_error_exit_code(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(root, "name: digits\nbogus: 1\n")
    monkeypatch.chdir(root)
    assert main(["config"]) == 2
    assert "bogus: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        # pydantic's lax mode reads True as 1 and "0.9" as 0.9: every numeric setting is strict.
        ("training.epochs", True, "training.epochs: Input should be a valid integer"),
        ("training.learning_rate", True, "training.learning_rate: Input should be a valid number"),
        (
            "gate.thresholds.accuracy",
            True,
            "gate.thresholds.accuracy: Input should be a valid number",
        ),
        ("gate.thresholds.macro_f1", "0.9", "gate.thresholds.macro_f1: Input should be a valid"),
        ("gate.max_size_bytes", False, "gate.max_size_bytes: Input should be a valid integer"),
        ("gate.per_class.min_recall", True, "gate.per_class.min_recall: Input should be a valid"),
        ("gate.per_class.overrides", {8: True}, "gate.per_class.overrides.8: Input should be"),
        ("gate.change.max_drop", float("inf"), "gate.change.max_drop: Input should be a finite"),
        ("gate.change.bootstrap_resamples", 1000.0, "bootstrap_resamples: Input should be a valid"),
        ("data.features.min", True, "data.features.min: Input should be a valid number"),
        ("data.features.image_shape", [8, True], "data.features.image_shape.1: Input should be"),
        (
            "data.label.classes",
            [0, 1, True],
            "data.label.classes.2: Input should be a valid integer",
        ),
        ("data.split.test", True, "data.split.test: Input should be a valid number"),
        ("data.expectations.min_rows", True, "data.expectations.min_rows: Input should be a valid"),
        ("serving.port", True, "serving.port: Input should be a valid integer"),
        ("serving.verify.ready_timeout_s", True, "ready_timeout_s: Input should be a valid number"),
        ("deploy.replicas", True, "deploy.replicas: Input should be a valid integer"),
        ("training.seed", "7", "training.seed: Input should be a valid integer"),
    ],
)
def test_numbers_are_strict(root: Path, key: str, value: object, fragment: str) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, {key: value})
    with pytest.raises(ConfigError) as err:
        load_model(root, "digits")
    assert fragment in str(err.value)
    assert err.value.exit_code == 2


def test_integers_still_count_as_numbers(root: Path) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(
        root,
        {
            "gate.thresholds.accuracy": 1,
            "gate.max_latency_p99_ms": 5,
            "gate.per_class.overrides": {8: 1},
        },
    )
    ws = load_model(root, "digits")
    assert ws.model.gate.thresholds.accuracy == 1.0
    assert ws.model.data.feature_schema().shape == (8, 8)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"gate.per_class.overrides": {11: 0.5}},
            "gate.per_class.overrides names class(es) [11] that are not in data.label.classes",
        ),
        (
            {"data.label.classes": [1, 2, 3], "gate.per_class.overrides": {0: 0.5, 3: 0.5}},
            "names class(es) [0]",
        ),
        ({"data.label.classes": [0, 1, 1]}, "classes lists [1] more than once"),
        (
            {
                "data.expectations.class_fraction_min": 0.3,
                "data.expectations.class_fraction_max": 0.2,
            },
            "class_fraction_min must not exceed class_fraction_max",
        ),
        (
            {"training.batch_size": 30, "training.distribution.workers": 4},
            "batch_size 30 does not split evenly across distribution.workers 4",
        ),
    ],
)
def test_settings_that_contradict_each_other(
    root: Path, changes: dict[str, object], fragment: str
) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, changes)
    with pytest.raises(ConfigError) as err:
        load_model(root, "digits")
    assert fragment in str(err.value)
    assert "{" not in str(err.value)  # a whole section is never dumped into the message


@pytest.mark.parametrize(
    ("written", "value"), [("1e-3", 0.001), ("3E-3", 0.003), ("+2.5e-3", 0.0025)]
)
def test_exponent_numbers_without_a_dot_are_numbers(root: Path, written: str, value: float) -> None:
    """YAML 1.2, not PyYAML's 1.1: `learning_rate: 1e-3` is a number, as users mean it."""
    path = root / "models" / "digits" / "model.yaml"
    path.write_text(path.read_text().replace("learning_rate: 0.003", f"learning_rate: {written}"))
    assert load_model(root, "digits").model.training.learning_rate == value


def test_a_quoted_exponent_number_is_still_a_string(root: Path) -> None:
    path = root / "models" / "digits" / "model.yaml"
    path.write_text(path.read_text().replace("learning_rate: 0.003", 'learning_rate: "1e-3"'))
    with pytest.raises(ConfigError, match="learning_rate: Input should be a valid number"):
        load_model(root, "digits")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "greater than or equal to 1"),
        (65, "less than or equal to 64"),
        ("2", "valid integer"),
        (True, "valid integer"),
    ],
)
def test_bad_worker_counts_are_refused(root: Path, value: object, fragment: str) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, {"training.distribution.workers": value})
    with pytest.raises(ConfigError) as err:
        load_model(root, "digits")
    assert "training.distribution.workers" in str(err.value)
    assert fragment in str(err.value)


def test_unknown_distribution_key_is_refused(root: Path) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, {"training.distribution.strategy": "parameter_server"})
    with pytest.raises(ConfigError, match="strategy"):
        load_model(root, "digits")


def test_one_worker_is_the_default() -> None:
    ws = load_model(ROOT, "digits")
    assert ws.model.training.distribution.workers == 1


REGRESSION = {
    "task": "regression",
    "data.label.classes": None,
    "data.label.min": 0,
    "data.label.max": 9,
    "data.expectations": {"min_rows": 50},
    "gate.thresholds": {"max_mae": 2.0, "min_r2": 0.5},
    "gate.per_class": None,
    "gate.change": {"max_increase": 0.05},
    "tuning.metric": "val_loss",
}


def _without_nulls(root: Path) -> None:
    path = root / "models" / "digits" / "model.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["data"]["label"] = {k: v for k, v in doc["data"]["label"].items() if v is not None}
    doc["gate"] = {k: v for k, v in doc["gate"].items() if v is not None}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_regression_model_states_its_own_settings(root: Path) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, REGRESSION)
    _without_nulls(root)
    model = load_model(root, "digits").model
    assert model.task == "regression"
    assert model.classes == []
    assert model.gate.thresholds.of("regression") == {"max_mae": 2.0, "min_r2": 0.5}


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        (
            {"data.label.min": None, "data.label.max": None},
            ["data.label.min: required", "data.label.max: required"],
        ),
        ({"data.label.classes": [0, 1]}, ["data.label.classes: not for a regression model"]),
        (
            {"gate.thresholds.accuracy": 0.9},
            ["gate.thresholds.accuracy: a classification setting"],
        ),
        ({"gate.change.max_drop": 0.01}, ["gate.change.max_drop: a classification setting"]),
        (
            {"data.expectations.class_fraction_min": 0.01},
            ["data.expectations.class_fraction_min: a classification setting"],
        ),
        ({"tuning.metric": "val_accuracy"}, ["a regression model is tuned on val_loss"]),
        (
            {"gate.slices": [{"feature": "pixel_0", "bins": [4]}]},
            ["slices need named features, not the image shorthand"],
        ),
        ({"data.label.min": 9}, ["min 9 must be below max 9"]),
    ],
)
def test_settings_of_the_other_task_are_refused(
    root: Path, changes: dict[str, object], fragments: list[str]
) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, REGRESSION)
    _without_nulls(root)
    edit_model_yaml(root, changes)
    _without_nulls(root)
    with pytest.raises(ConfigError) as err:
        load_model(root, "digits")
    assert err.value.exit_code == 2
    for fragment in fragments:
        assert fragment in str(err.value)


def test_a_classifier_refuses_regression_settings(root: Path) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(root, {"gate.thresholds.max_rmse": 3.0, "data.label.min": 0})
    with pytest.raises(ConfigError) as err:
        load_model(root, "digits")
    assert "gate.thresholds.max_rmse: a regression setting" in str(err.value)
    assert "data.label.min: not for a classification model" in str(err.value)

import json
import shutil
from pathlib import Path

import pytest

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
    assert "allowed here: architecture, batch_size, epochs" in msg
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
    with pytest.raises(ConfigError, match="known models: digits"):
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


def test_cli_config_error_exit_code(root: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    write(root, "name: digits\nbogus: 1\n")
    monkeypatch.chdir(root)
    assert main(["config"]) == 2
    assert "bogus: unknown key" in capsys.readouterr().err

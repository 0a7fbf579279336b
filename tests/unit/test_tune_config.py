"""`mlops tune`'s bad input: each is refused with exit 2 and a message naming the problem, before
anything is written (no tuned.yaml, no artifacts/<model>/tune/); and tuned.yaml's merge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import cli
from pipelines.config import TunedFile, load_model
from pipelines.core import dvcgraph, tuning
from pipelines.errors import ConfigError
from tests.conftest import copy_repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("tune-config"))


@pytest.fixture
def model_yaml(repo: Path) -> Any:
    path = repo / "models/digits/model.yaml"
    original = path.read_text()
    yield path
    path.write_text(original)
    (repo / "models/digits/tuned.yaml").unlink(missing_ok=True)


def _with_tuning(path: Path, tuning: dict[str, Any] | None) -> None:
    doc = yaml.safe_load(path.read_text())
    if tuning is None:
        doc.pop("tuning")
    else:
        doc["tuning"] = tuning
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _tune(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    monkeypatch.chdir(repo)
    code = cli.main(["tune", *args])
    return code, capsys.readouterr().err


def _nothing_written(repo: Path) -> None:
    assert not (repo / "models/digits/tuned.yaml").exists()
    assert not (repo / "artifacts/digits/tune").exists()


BAD_SPACES = {
    "empty space": ({}, "space is empty"),
    "low not below high": (
        {"learning_rate": {"type": "float", "low": 0.01, "high": 0.01}},
        "low (0.01) must be below high (0.01)",
    ),
    "log with low <= 0": (
        {"learning_rate": {"type": "float", "low": 0.0, "high": 0.1, "log": True}},
        "log-scaled dimension needs low > 0",
    ),
    "empty choices": (
        {"batch_size": {"type": "categorical", "choices": []}},
        "needs a non-empty `choices` list",
    ),
    "unknown target": (
        {"params.units": {"type": "int", "low": 1, "high": 4}},
        "unknown target 'params.units'",
    ),
    "unknown name": (
        {"momentum": {"type": "float", "low": 0.1, "high": 0.9}},
        "unknown target 'momentum'",
    ),
    "float range for an int value": (
        {"batch_size": {"type": "float", "low": 8.0, "high": 64.0}},
        "batch_size takes int values",
    ),
    "int dimension with float bounds": (
        {"params.dense": {"type": "int", "low": 8.5, "high": 64}},
        "integer low, high and step",
    ),
    "string bound": (
        {"learning_rate": {"type": "float", "low": "0.001", "high": 0.01}},
        "learning_rate",
    ),
    "missing high": ({"params.dropout": {"type": "float", "low": 0.1}}, "needs both `low`"),
    "unknown key": (
        {"params.dropout": {"type": "float", "low": 0.1, "high": 0.5, "scale": "log"}},
        "unknown key",
    ),
}


@pytest.mark.parametrize("case", BAD_SPACES)
def test_an_invalid_search_space_is_refused_with_exit_2(
    repo: Path,
    model_yaml: Path,
    case: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space, expected = BAD_SPACES[case]
    _with_tuning(model_yaml, {"space": space})
    code, err = _tune(repo, capsys, monkeypatch)
    assert code == 2, err
    assert "tuning" in err
    assert expected in err
    _nothing_written(repo)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--workers", "999"], "--workers 999 is more than the"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--storage", "mysql://u:hunter2@db/x"], "is not a study storage"),
        (["--storage", "sqlite:////etc/study.db"], "outside"),
    ],
)
def test_bad_flags_are_refused_with_exit_2(
    repo: Path,
    model_yaml: Path,
    args: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, err = _tune(repo, capsys, monkeypatch, *args)
    assert code == 2, err
    assert expected in err
    assert "hunter2" not in err
    _nothing_written(repo)


def test_a_model_without_a_tuning_section_is_refused(
    repo: Path,
    model_yaml: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_tuning(model_yaml, None)
    code, err = _tune(repo, capsys, monkeypatch)
    assert code == 2
    assert "has no `tuning` section" in err
    _nothing_written(repo)


def _tuned(training: dict[str, Any]) -> dict[str, Any]:
    return {
        "study": "digits-0123456789ab",
        "metric": "val_accuracy",
        "direction": "maximize",
        "value": 0.97,
        "best_trial": 3,
        "finished_trials": 8,
        "space_sha256": "0" * 64,
        "training": training,
    }


def test_tuned_yaml_takes_precedence_over_model_yaml(repo: Path, model_yaml: Path) -> None:
    tuned = repo / "models/digits/tuned.yaml"
    tuned.write_text(yaml.safe_dump(_tuned({"learning_rate": 0.001, "params": {"dropout": 0.4}})))
    ws = load_model(repo, "digits")
    assert ws.tuned is not None
    assert ws.tuned.study == "digits-0123456789ab"
    assert ws.model.training.learning_rate == 0.001
    assert ws.model.training.params["dropout"] == 0.4
    # What tuned.yaml does not name keeps model.yaml's value.
    assert ws.model.training.batch_size == 32
    assert ws.model.training.params["filters"] == [16, 32]


def test_a_tuned_yaml_naming_a_vanished_parameter_is_refused(repo: Path, model_yaml: Path) -> None:
    (repo / "models/digits/tuned.yaml").write_text(yaml.safe_dump(_tuned({"params": {"units": 4}})))
    with pytest.raises(ConfigError, match=r"unknown target 'params\.units'") as err:
        load_model(repo, "digits")
    assert err.value.exit_code == 2
    assert "delete the file" in str(err.value)


def test_dvc_yaml_makes_tuned_yaml_a_param_of_train_only_once_it_exists() -> None:
    code: dict[str, list[str]] = {stage: [] for stage in dvcgraph.ORDER}
    without = yaml.safe_load(dvcgraph.render({"digits": "architecture.py"}, code))
    tuned = yaml.safe_load(dvcgraph.render({"digits": "architecture.py"}, code, ["digits"]))
    entry = {"models/digits/tuned.yaml": ["training"]}
    assert entry not in without["stages"]["train-digits"]["params"]
    assert entry in tuned["stages"]["train-digits"]["params"]
    assert entry not in tuned["stages"]["evaluate-digits"]["params"]


def test_a_trials_values_become_training_values() -> None:
    values = {"learning_rate": 0.01, "params.dropout": 0.3, "batch_size": 16}
    assert tuning.overrides(values) == {
        "learning_rate": 0.01,
        "batch_size": 16,
        "params": {"dropout": 0.3},
    }
    assert (
        TunedFile.model_validate(
            _tuned(tuning.tuned_values(values).model_dump(exclude_none=True))
        ).training.flat()
        == values
    )


def test_the_study_changes_with_the_space() -> None:
    ws = load_model(Path(__file__).resolve().parents[2], "digits")
    assert ws.model.tuning is not None
    first = tuning.space_sha256(ws.model, "a" * 64)
    other = ws.model.model_copy(update={"tuning": ws.model.tuning.model_copy(update={"space": {}})})
    assert tuning.space_sha256(other, "a" * 64) != first
    assert tuning.space_sha256(ws.model, "b" * 64) != first  # the network's code changed
    assert tuning.study_name("digits", first) == f"digits-{first[:12]}"
    assert tuning.worker_problem(3, 2) is not None
    assert tuning.worker_problem(2, 2) is None


def test_the_storage_comes_from_mlops_tune_storage_when_no_flag_names_one(
    repo: Path,
    model_yaml: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_TUNE_STORAGE", "redis://:hunter2@cache:6379/0")
    code, err = _tune(repo, capsys, monkeypatch)
    assert code == 2, err
    assert "is not a study storage" in err
    assert "hunter2" not in err
    _nothing_written(repo)


def test_the_first_trial_is_model_yamls_own_values_where_the_space_has_them() -> None:
    ws = load_model(Path(__file__).resolve().parents[2], "digits")
    assert ws.model.tuning is not None
    start = tuning.starting_point(ws.model.training, ws.model.tuning.space)
    # digits: learning_rate 0.003 in [0.0005, 0.01], batch 32 a choice, dense 64 on the
    # 32-step grid from 32, dropout 0.25 in [0.1, 0.5].
    assert start == {
        "learning_rate": 0.003,
        "batch_size": 32,
        "params.dense": 64,
        "params.dropout": 0.25,
    }
    space = ws.model.tuning.space
    assert not tuning.fits(space["params.dense"], 80)  # off the step grid
    assert not tuning.fits(space["batch_size"], 48)  # not a choice
    assert not tuning.fits(space["learning_rate"], 0.5)  # out of range

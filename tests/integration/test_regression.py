"""The diabetes regressor through ingest, validate, train, evaluate and gate, on real data and a
real network; and each kind of bad input a regressor adds, caught with its exit code."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.config import load_model
from pipelines.stages import evaluate, ingest, train, validate
from tests.conftest import copy_repo, edit_model_yaml, needs_two_cpus

MODEL = "diabetes"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("diabetes"))
    edit_model_yaml(root, {"training.epochs": 40}, MODEL)
    ws = load_model(root, MODEL)
    ingest.run(ws)
    validate.run(ws)
    train.run(ws)
    evaluate.run(ws)
    return root


@pytest.fixture
def repo(trained: Path, tmp_path: Path) -> Iterator[Path]:
    dest = tmp_path / "repo"
    shutil.copytree(trained, dest, symlinks=True)
    cwd = Path.cwd()
    os.chdir(dest)
    try:
        yield dest
    finally:
        os.chdir(cwd)


def art(root: Path, rel: str) -> Path:
    return root / "artifacts" / MODEL / rel


def test_the_split_is_a_seeded_shuffle_of_the_bundled_table(trained: Path) -> None:
    splits = {s: pd.read_parquet(trained / f"data/{MODEL}/{s}.parquet") for s in ("train", "test")}
    assert sum(len(df) for df in splits.values()) + 67 == 442
    assert splits["train"]["age"].dtype == np.int64  # whole numbers stay integers
    assert splits["train"]["progression"].dtype == np.float64


def test_the_exported_model_answers_in_the_target_s_units(trained: Path) -> None:
    metrics = json.loads(art(trained, "evaluate/metrics.json").read_text())
    assert metrics["task"] == "regression"
    assert set(metrics) >= {"rmse", "mae", "r2"}
    assert "accuracy" not in metrics
    # The training targets' standardisation is inside the model: its predictions are on the
    # target's scale (25..346, mean ~152), not around 0.
    predictions = pd.read_parquet(art(trained, "evaluate/predictions.parquet"))
    assert list(predictions.columns) == ["row_id", "label", "predicted", "abs_error"]
    assert 100 < predictions["predicted"].mean() < 200
    assert np.allclose(
        predictions["abs_error"], (predictions["predicted"] - predictions["label"]).abs()
    )
    assert metrics["mae"] == pytest.approx(predictions["abs_error"].mean())
    assert metrics["r2"] > 0.3
    assert art(trained, "evaluate/residuals.png").is_file()
    profile = json.loads(art(trained, "train/profile.json").read_text())
    edges = profile["prediction_edges"]
    assert edges == sorted(edges)
    assert len(edges) == 9  # deciles of the predicted value
    assert profile["classes"] == list(range(10))
    assert sum(profile["class_ratio"]) == pytest.approx(1.0)


def test_the_gate_judges_errors_paired_and_slice_by_slice(repo: Path) -> None:
    baseline = repo / "baseline.tflite"
    shutil.copy(art(repo, "train/model.tflite"), baseline)
    assert main(["gate", "--model", MODEL, "--baseline", str(baseline)]) == 0
    blessing = json.loads(art(repo, "gate/blessing.json").read_text())
    assert blessing["comparison"]["delta"] == 0.0  # the same model: every error identical
    assert blessing["comparison"]["p_value"] == 1.0
    assert blessing["baseline"]["mae"] == blessing["candidate"]["mae"]
    names = [s["name"] for s in blessing["slices"]]
    assert names == ["sex=1", "sex=2", "bmi in [-inf, 25)", "bmi in [25, 30)", "bmi in [30, inf)"]
    assert {r["rule"] for r in blessing["rules"]} == {
        "max_rmse",
        "max_mae",
        "min_r2",
        "max_size_bytes",
        "max_latency_p99_ms",
        "change_not_worse",
        "slices",
    }


def test_a_classifier_is_no_baseline_for_a_regressor(
    repo: Path, prepared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digits = prepared / "artifacts/digits/train/model.tflite"
    assert main(["gate", "--model", MODEL, "--baseline", str(digits)]) == 2
    err = capsys.readouterr().err
    assert "cannot be compared with the candidate" in err
    assert "this regressor predicts one value" in err
    assert not art(repo, "gate/blessing.json").exists()


def test_a_slice_that_fails_refuses_the_candidate(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_model_yaml(repo, {"gate.slices": [{"feature": "sex", "max_mae": 1.0}]}, MODEL)
    assert main(["gate", "--model", MODEL]) == 1
    err = capsys.readouterr().err
    assert "slices: sex=1: n=" in err
    assert "> 1" in err
    blessing = json.loads(art(repo, "gate/blessing.json").read_text())
    assert blessing["blessed"] is False


@pytest.mark.parametrize(
    ("value", "words"),
    [(500.0, "progression"), (-3.0, "progression"), (None, "progression")],
)
def test_a_target_outside_its_range_or_missing_is_invalid_data(
    repo: Path, capsys: pytest.CaptureFixture[str], value: float | None, words: str
) -> None:
    path = repo / f"data/{MODEL}/train.parquet"
    df = pd.read_parquet(path)
    df.loc[3, "progression"] = value
    df.to_parquet(path)
    assert main(["validate", "--model", MODEL]) == 1
    err = capsys.readouterr().err
    assert "data validation failed" in err
    assert words in err
    # The failed summary and Data Docs stay for the reader; no stage after validate may run.
    summary = json.loads(art(repo, "validate/summary.json").read_text())
    assert summary["success"] is False
    assert main(["train", "--model", MODEL]) == 1


def test_a_target_in_other_units_is_caught_by_the_model_s_suite(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every value within [0, 400], so the range check passes; the distribution does not."""
    path = repo / f"data/{MODEL}/train.parquet"
    df = pd.read_parquet(path)
    df.assign(progression=df["progression"] / 100).to_parquet(path)
    assert main(["validate", "--model", MODEL]) == 1
    err = capsys.readouterr().err
    assert "progression: expect_column_mean_to_be_between" in err


def test_a_regressor_is_tuned_by_its_validation_loss(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = {"learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": True}}
    tuning = {"space": space, "metric": "val_loss", "trials": 2, "seed": 0}
    edit_model_yaml(repo, {"tuning": tuning, "training.epochs": 5}, MODEL)
    assert main(["tune", "--model", MODEL]) == 0, capsys.readouterr().err
    assert f"wrote models/{MODEL}/tuned.yaml" in capsys.readouterr().out
    record = json.loads(art(repo, "tune/tuning.json").read_text())
    assert record["metric"] == "val_loss"
    assert record["direction"] == "minimize"
    ws = load_model(repo, MODEL)
    assert ws.tuned is not None
    assert ws.tuned.metric == "val_loss"
    assert ws.tuned.direction == "minimize"


@needs_two_cpus
def test_two_workers_train_a_regressor(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The workers share float targets (tf.data) and the chief exports the rescaled model."""
    edit_model_yaml(repo, {"training.epochs": 20}, MODEL)
    assert main(["train", "--model", MODEL, "--workers", "2"]) == 0
    assert "val mae" in capsys.readouterr().out
    history = json.loads(art(repo, "train/history.json").read_text())
    assert len(history["val_mae"]) == 20
    ws = load_model(repo, MODEL)
    assert evaluate.run(ws).metrics.headline()["r2"] > 0.2


def test_an_architecture_without_one_output_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = repo / f"models/{MODEL}/architecture.py"
    arch.write_text(arch.read_text().replace("Dense(num_outputs)", "Dense(3)"))
    assert main(["train", "--model", MODEL]) == 2
    err = capsys.readouterr().err
    assert "whose output is [3]; this regression model needs [1]" in err
    assert not art(repo, "train/model.tflite").exists()

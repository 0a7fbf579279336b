"""Real TensorFlow training, LiteRT evaluation and the gate on the real digits data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import evidence
from pipelines.adapters.artifacts import sha256_file
from pipelines.cli import main
from pipelines.config import load_model
from pipelines.errors import ConfigError, EvidenceError, GateFailed
from pipelines.stages import evaluate, gate, train, validate
from tests.conftest import edit_model_yaml


def test_artifacts_of_a_trained_model(prepared: Path) -> None:
    out = prepared / "artifacts/digits"
    for name in ("model.keras", "model.tflite", "curves.png", "history.json", "provenance.json"):
        assert (out / "train" / name).is_file(), name
    prov = json.loads((out / "train/provenance.json").read_text())
    assert prov["model_sha256"] == sha256_file(out / "train/model.tflite")
    assert prov["quantization"] == "dynamic_range"
    assert len(prov["git_commit"]) == 40
    assert prov["data_md5"].endswith(".dir")
    assert len(prov["params_sha256"]) == 64
    metrics = json.loads((out / "evaluate/metrics.json").read_text())
    assert metrics["accuracy"] > 0.9  # four epochs are plenty for digits
    assert set(metrics["per_class"]) == {str(c) for c in range(10)}
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["n"] == 360
    assert metrics["latency_ms"]["p50"] > 0
    assert (out / "evaluate/confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    preds = pd.read_parquet(out / "evaluate/predictions.parquet")
    assert list(preds.columns) == ["row_id", "label", "predicted", "confidence"]
    assert (preds["label"] == preds["predicted"]).mean() == pytest.approx(metrics["accuracy"])


def test_train_writes_the_reference_profile_of_its_model(prepared: Path) -> None:
    ws = load_model(prepared, "digits")
    tflite = prepared / "artifacts/digits/train/model.tflite"
    profile = evidence.require_profile(ws, sha256_file(tflite))
    assert profile.features == ws.model.data.feature_columns
    assert (profile.rows, profile.validation_rows) == (1167, 270)
    # digits has constant pixels: their stddev is floored, and the Gaussian still inverts.
    assert min(profile.stddev) == profile.stddev_floor > 0
    assert np.all(np.isfinite(profile.anomaly.precision))
    assert sum(profile.class_ratio) == pytest.approx(1.0)
    assert 0 < profile.anomaly.validation_rate <= 0.02
    drift = profile.drift
    assert drift.window_instances == ws.model.monitoring.window_instances == 200
    assert drift.feature_effect > 0
    assert drift.prediction_psi > 0
    assert 0 <= drift.drifted_fraction < 0.5


def test_training_is_deterministic(workspace: Path, prepared: Path) -> None:
    ws = load_model(workspace, "digits")
    again = train.run(ws)
    assert again.tflite_sha256 == sha256_file(prepared / "artifacts/digits/train/model.tflite")
    profile = "artifacts/digits/train/profile.json"
    # Its provenance holds a timestamp; everything computed from the data is identical.
    kept = evidence.load(prepared / profile, evidence.Profile).model_dump(exclude={"provenance"})
    assert (
        evidence.load(workspace / profile, evidence.Profile).model_dump(exclude={"provenance"})
        == kept
    )


def test_quantized_artifact_is_smaller_than_float(workspace: Path, prepared: Path) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(workspace, {"export.quantization": "none"})
    ws = load_model(workspace, "digits")
    float_size = train.run(ws).tflite.stat().st_size
    quantized = (prepared / "artifacts/digits/train/model.tflite").stat().st_size
    assert quantized < float_size / 2


def test_gate_blesses_and_compares_against_a_baseline(workspace: Path) -> None:
    ws = load_model(workspace, "digits")
    baseline = workspace / "baseline.tflite"
    shutil.copy(workspace / "artifacts/digits/train/model.tflite", baseline)
    result = gate.run(ws, baseline)
    blessing = json.loads(result.blessing.read_text())
    assert blessing["blessed"] is True
    assert blessing["comparison"]["delta"] == 0.0
    assert blessing["comparison"]["p_value"] == 1.0
    assert blessing["baseline"]["model_sha256"] == sha256_file(baseline)
    assert evidence.require_blessing(ws).blessed is True


def test_gate_without_baseline_says_so(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    assert main(["gate"]) == 0
    out = capsys.readouterr().out
    assert "no baseline model: the change rule was not applied" in out


def test_degraded_model_is_blocked(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Train on shuffled labels: the data stays valid, the model is junk, the gate says no."""
    baseline = workspace / "baseline.tflite"
    shutil.copy(workspace / "artifacts/digits/train/model.tflite", baseline)
    path = workspace / "data/digits/train.parquet"
    df = pd.read_parquet(path)
    df["label"] = np.random.default_rng(0).permutation(df["label"].to_numpy())
    df.to_parquet(path, index=False)
    ws = load_model(workspace, "digits")
    validate.run(ws)  # shuffled labels keep the schema and the class balance
    train.run(ws)
    evaluate.run(ws)
    monkeypatch.chdir(workspace)
    assert main(["gate", "--baseline", str(baseline)]) == 1
    err = capsys.readouterr().err
    assert "the gate refused the candidate" in err
    assert "min_accuracy: accuracy" in err
    assert "change_not_worse: significantly worse than the baseline" in err
    blessing = json.loads((workspace / "artifacts/digits/gate/blessing.json").read_text())
    assert blessing["blessed"] is False
    assert blessing["comparison"]["c"] > 100  # baseline right, candidate wrong
    with pytest.raises(GateFailed, match="not blessed"):
        evidence.require_blessing(ws)


def test_blessing_is_bound_to_the_artifact(workspace: Path) -> None:
    ws = load_model(workspace, "digits")
    gate.run(ws)
    artifact = workspace / "artifacts/digits/train/model.tflite"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(EvidenceError, match="different model artifact"):
        evidence.require_blessing(ws)


def test_gate_refuses_stale_evaluation(workspace: Path) -> None:
    ws = load_model(workspace, "digits")
    artifact = workspace / "artifacts/digits/train/model.tflite"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="does not match the trained model"):
        gate.run(ws)


def test_missing_or_corrupt_baseline_is_a_usage_error(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    assert main(["gate", "--baseline", "nope.tflite"]) == 2
    (workspace / "junk.tflite").write_bytes(b"not a model")
    assert main(["gate", "--baseline", "junk.tflite"]) == 2


def test_nothing_is_packaged_without_a_blessing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    assert main(["package"]) == 2
    assert "no blessing" in capsys.readouterr().err
    assert not (workspace / "artifacts/digits/package").exists()
    assert main(["verify"]) == 2


def test_a_baseline_that_cannot_be_looked_up_is_an_error_not_a_first_release(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the embedded GitOps repository may be absent (nothing released yet). A configured
    remote that does not exist, or a baseline environment that is not there, must not turn
    into "no baseline: the change rule was not applied"."""
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLOPS_GITOPS_REMOTE", "gitops-typo.git")
    assert main(["gate"]) == 3
    err = capsys.readouterr().err
    assert "does not exist or is not a git repository" in err, err
    assert not (workspace / "artifacts/digits/gate/blessing.json").exists()
    assert not (workspace / "gitops-typo.git").exists()

    monkeypatch.delenv("MLOPS_GITOPS_REMOTE")
    edit_model_yaml(workspace, {"gate.change.baseline_environment": "prod"})
    assert main(["gate"]) == 2
    err = capsys.readouterr().err
    assert "unknown environment 'prod'" in err, err
    assert "known environments: production, staging" in err, err

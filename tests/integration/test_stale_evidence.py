"""No stale evidence: a stage that errors leaves no record of an earlier run, and every guard
checks that the record it accepts is for the current artifact, data and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines import evidence
from pipelines.cli import main
from pipelines.config import load_model
from pipelines.errors import ConfigError, DataInvalid, EvidenceError
from pipelines.stages import gate, validate
from tests import util
from tests.conftest import edit_model_yaml

DIGEST = "sha256:" + "0" * 64


def _bless(workspace: Path) -> None:
    assert gate.run(load_model(workspace, "digits")).blessed


def _nudge_data(workspace: Path) -> None:
    """Still valid data, but other data: one pixel of one training image changes."""
    path = workspace / "data/digits/train.parquet"
    df = pd.read_parquet(path)
    df.loc[0, "pixel_10"] = 16.0 if df.loc[0, "pixel_10"] != 16.0 else 0.0
    df.to_parquet(path, index=False)


def test_blessing_does_not_survive_new_valid_data(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bless(workspace)
    _nudge_data(workspace)
    ws = load_model(workspace, "digits")
    validate.run(ws)  # the new data is valid, and the old blessing is for the old data
    with pytest.raises(EvidenceError, match="other data than the current dataset"):
        evidence.require_blessing(ws)
    monkeypatch.chdir(workspace)
    assert main(["package"]) == 2
    # The model itself was trained on the old data: evaluate will not score it as current.
    assert main(["evaluate"]) == 2


def test_blessing_does_not_survive_failed_validation(workspace: Path) -> None:
    _bless(workspace)
    path = workspace / "data/digits/train.parquet"
    df = pd.read_parquet(path)
    df.loc[3, "pixel_1"] = 99.0
    df.to_parquet(path, index=False)
    ws = load_model(workspace, "digits")
    with pytest.raises(DataInvalid):
        validate.run(ws)
    with pytest.raises(DataInvalid, match="failed validation"):
        evidence.require_blessing(ws)


def test_blessing_does_not_survive_changed_gate_rules(workspace: Path) -> None:
    _bless(workspace)
    edit_model_yaml(workspace, {"gate.thresholds.accuracy": 0.99})
    with pytest.raises(EvidenceError, match=r"gate rules in model\.yaml changed"):
        evidence.require_blessing(load_model(workspace, "digits"))


def test_erroring_gate_removes_the_earlier_blessing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bless(workspace)
    (workspace / "artifacts/digits/evaluate/metrics.json").write_text("{not json")
    monkeypatch.chdir(workspace)
    assert main(["gate"]) == 2  # a broken record is a usage error, not a traceback
    assert not (workspace / "artifacts/digits/gate").exists()
    assert main(["package"]) == 2


def test_erroring_train_and_evaluate_leave_nothing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    (workspace / "artifacts/digits/train/model.tflite").unlink()
    assert main(["evaluate"]) == 2
    assert not (workspace / "artifacts/digits/evaluate").exists()
    assert main(["gate"]) == 2
    assert "no evaluation" in capsys.readouterr().err
    _nudge_data(workspace)  # not validated: train refuses, and keeps no old model around
    assert main(["train"]) == 2
    assert not (workspace / "artifacts/digits/train").exists()


def test_evaluate_refuses_a_model_train_did_not_record(workspace: Path) -> None:
    artifact = workspace / "artifacts/digits/train/model.tflite"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    from pipelines.stages import evaluate

    with pytest.raises(ConfigError, match="is not the model train recorded"):
        evaluate.run(load_model(workspace, "digits"))


def _fake_release(workspace: Path) -> None:
    blessing = json.loads((workspace / "artifacts/digits/gate/blessing.json").read_text())
    sha = blessing["candidate"]["model_sha256"]
    out = workspace / "artifacts/digits/package"
    image = f"127.0.0.1:1/mlops/digits@{DIGEST}"
    evidence.save(out / "release.json", util.packaged_release("digits-000000000000", image, sha))
    (out / "sbom.cdx.json").write_text("{}")
    evidence.save(
        workspace / "artifacts/digits/verify/infra_blessing.json",
        util.infra_blessing("digits-000000000000", image, sha),
    )


def test_package_and_verify_that_error_leave_no_earlier_record(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry is unreachable (exit 3): the previous release record and infra blessing
    must go, so that release cannot ship what this run did not build and verify."""
    _bless(workspace)
    _fake_release(workspace)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("REGISTRY", "127.0.0.1:1")
    assert main(["verify"]) == 3
    assert not (workspace / "artifacts/digits/verify").exists()
    assert (workspace / "artifacts/digits/package/release.json").is_file()
    assert main(["package"]) == 3
    assert not (workspace / "artifacts/digits/package").exists()


def test_evaluate_refuses_a_model_trained_for_other_classes(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same data, classes listed in another order: valid data, but the network's outputs
    now mean other classes."""
    edit_model_yaml(workspace, {"data.label.classes": list(range(9, -1, -1))})
    validate.run(load_model(workspace, "digits"))
    monkeypatch.chdir(workspace)
    assert main(["evaluate"]) == 2
    assert "the model was trained for the classes [0, 1" in capsys.readouterr().err


def test_the_report_does_not_show_an_earlier_runs_blessing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A restored artifacts cache holds the last run's blessing for the same data; this run's
    training failed (train/ is gone: train clears it first). The report must not say blessed."""
    _bless(workspace)
    monkeypatch.chdir(workspace)
    assert main(["report"]) == 0
    assert "✅ blessed" in capsys.readouterr().out
    ws = load_model(workspace, "digits")
    (ws.artifacts("train") / "model.tflite").unlink()
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "✅ blessed" not in out
    assert "the gate did not run" in out

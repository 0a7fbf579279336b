"""ingest: deterministic split, reproducible data.dvc hash, and a configurable file source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.cli import main
from pipelines.config import load_model
from pipelines.stages import ingest
from tests.conftest import ROOT, copy_repo, edit_model_yaml

DVC = str(Path(sys.executable).parent / "dvc")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path)


def test_fresh_copy_reproduces_the_committed_hash(repo: Path) -> None:
    committed = yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]["md5"]
    result = ingest.run(load_model(repo, "digits"))
    assert result.data_md5 == committed
    assert result.rows == {"train": 1167, "validation": 270, "test": 360}
    status = subprocess.run(
        [DVC, "status", "data.dvc"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert "up to date" in status.stdout
    assert subprocess.run(["git", "diff", "--quiet", "data.dvc"], cwd=repo).returncode == 0
    # Idempotent: a second ingest rewrites nothing.
    assert ingest.run(load_model(repo, "digits")).changed is False


def test_split_is_stratified_and_disjoint(repo: Path) -> None:
    ingest.run(load_model(repo, "digits"))
    frames = {
        s: pd.read_parquet(repo / f"data/digits/{s}.parquet")
        for s in ("train", "validation", "test")
    }
    ids = [set(df["row_id"]) for df in frames.values()]
    assert not ids[0] & ids[1]
    assert not ids[0] & ids[2]
    assert not ids[1] & ids[2]
    assert sum(map(len, ids)) == 1797
    test_share = frames["test"]["label"].value_counts(normalize=True)
    assert test_share.between(0.08, 0.12).all()


def test_csv_source(repo: Path) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits(as_frame=True)
    df = bunch.frame.rename(columns={"target": "label"})
    # sklearn names pixels pixel_<row>_<col>; the model expects pixel_0..pixel_63.
    df.columns = [f"pixel_{i}" for i in range(64)] + ["label"]
    (repo / "raw").mkdir()
    df.to_csv(repo / "raw/digits.csv", index=False)
    edit_model_yaml(repo, {"data.source": {"kind": "file", "path": "raw/digits.csv"}})
    result = ingest.run(load_model(repo, "digits"))
    assert sum(result.rows.values()) == 1797
    from pipelines.stages import validate

    assert validate.run(load_model(repo, "digits")).success


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("empty.csv", "", "empty file"),
        ("nolabel.csv", "pixel_0,pixel_1\n1,2\n", "no label column 'label'"),
    ],
    ids=["empty", "no-label-column"],
)
def test_a_bad_source_file_is_invalid_data(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    error: str,
) -> None:
    (repo / name).write_text(text)
    edit_model_yaml(repo, {"data.source": {"kind": "file", "path": name}})
    monkeypatch.chdir(repo)
    assert main(["ingest"]) == 1
    assert error in capsys.readouterr().err
    assert not (repo / "data").exists()


def test_missing_source_file_is_a_usage_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_model_yaml(repo, {"data.source": {"kind": "file", "path": "absent.parquet"}})
    monkeypatch.chdir(repo)
    assert main(["ingest"]) == 2


def test_a_failed_ingest_leaves_no_validation_that_vouches_for_the_data(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import evidence
    from pipelines.errors import ConfigError, DataInvalid
    from pipelines.stages import validate

    ingest.run(load_model(repo, "digits"))
    assert validate.run(load_model(repo, "digits")).success
    (repo / "nolabel.csv").write_text("pixel_0,pixel_1\n1,2\n")
    edit_model_yaml(repo, {"data.source": {"kind": "file", "path": "nolabel.csv"}})
    ws = load_model(repo, "digits")
    with pytest.raises(DataInvalid):
        ingest.run(ws)
    assert not ws.artifacts("validate").exists()
    with pytest.raises(ConfigError, match="no validation summary"):
        evidence.require_valid_data(ws)


def test_a_data_dvc_dvc_refuses_is_a_usage_error_that_names_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = b"outs: [ {\n"
    (repo / "data.dvc").write_bytes(damaged)
    monkeypatch.chdir(repo)
    capsys.readouterr()
    assert main(["ingest"]) == 2
    err = capsys.readouterr().err
    assert "DVC cannot record data: unable to read: 'data.dvc'" in err
    assert "restored from git" in err
    assert "internal error" not in err
    assert (repo / "data.dvc").read_bytes() == damaged  # left for the user to restore

"""`mlops run` end to end, as a user would run it, in a fresh clone of this repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.core.dvcgraph import PIPELINE
from tests.conftest import FAST_TRAINING, copy_repo, edit_model_yaml

BIN = Path(sys.executable).parent


def mlops(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "CI": "1"}
    return subprocess.run(
        [str(BIN / "mlops"), *args], cwd=clone, env=env, capture_output=True, text=True, timeout=600
    )


def statuses(stdout: str) -> dict[str, str]:
    rows = [line.split("|") for line in stdout.splitlines() if line.startswith("| ")]
    return {
        cells[1].strip(): cells[2].strip()
        for cells in rows[1:]
        if len(cells) > 3 and cells[1].strip() in set(PIPELINE)
    }


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    origin = copy_repo(tmp_path_factory.mktemp("origin"))
    dest = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True)
    edit_model_yaml(dest, FAST_TRAINING)
    return dest


def test_cold_run_blesses_a_model(clone: Path) -> None:
    first = mlops(clone, "run", "--until", "gate")
    assert first.returncode == 0, first.stderr + first.stdout
    stages = ("ingest", "validate", "train", "evaluate", "gate")
    assert statuses(first.stdout) == dict.fromkeys(stages, "ran")
    assert "mlops run: done through gate" in first.stdout
    art = clone / "artifacts/digits"
    for rel in (
        "validate/data_docs/index.html",
        "validate/summary.json",
        "train/curves.png",
        "train/model.tflite",
        "evaluate/metrics.json",
        "evaluate/confusion_matrix.png",
        "gate/blessing.json",
    ):
        assert (art / rel).is_file(), rel
    assert json.loads((art / "gate/blessing.json").read_text())["blessed"] is True
    # The fresh clone reproduced data.dvc exactly, and dvc.yaml was already current.
    diff = subprocess.run(
        ["git", "status", "--porcelain", "data.dvc", "dvc.yaml"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    assert diff.stdout == ""
    # digits' stages are cached; diabetes' have not run in this clone.
    digits = [f"{stage}-digits" for stage in ("validate", "train", "evaluate")]
    status = subprocess.run(
        [str(BIN / "dvc"), "status", *digits],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Data and pipelines are up to date" in status.stdout


def test_warm_run_skips_unchanged_stages(clone: Path) -> None:
    again = mlops(clone, "run", "--until", "gate")
    assert again.returncode == 0, again.stderr
    assert statuses(again.stdout) == {
        "ingest": "ran",
        "validate": "skipped",
        "train": "skipped",
        "evaluate": "skipped",
        "gate": "ran",
    }


def test_changed_parameter_reruns_only_what_depends_on_it(clone: Path) -> None:
    edit_model_yaml(clone, {"training.epochs": 3})
    result = mlops(clone, "run", "--until", "gate")
    assert result.returncode == 0, result.stderr
    assert statuses(result.stdout) == {
        "ingest": "ran",
        "validate": "skipped",
        "train": "ran",
        "evaluate": "ran",
        "gate": "ran",
    }


def test_full_run_releases_to_staging_and_proposes_production(
    clone: Path, infra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASE_IMAGE", infra)
    result = mlops(clone, "run")
    assert result.returncode == 0, result.stderr + result.stdout
    st = statuses(result.stdout)
    assert st == {
        "ingest": "ran",
        "validate": "skipped",
        "train": "skipped",
        "evaluate": "skipped",
        "gate": "ran",
        "package": "ran",
        "verify": "ran",
        "release": "ran",
        "promote": "ran",
    }
    record = json.loads((clone / "artifacts/digits/package/release.json").read_text())
    assert "@sha256:" in record["image"]
    infra_blessing = json.loads((clone / "artifacts/digits/verify/infra_blessing.json").read_text())
    assert infra_blessing["blessed"] is True
    assert infra_blessing["image"] == record["image"]
    assert "| same_predictions" in result.stdout
    assert f"{record['release_id']} now serves staging (blue)" in result.stdout
    assert "opened #1 (promote/production/" in result.stdout
    index = json.loads((clone / ".infra/pull-requests/index.json").read_text())
    assert index["1"]["state"] == "open"
    assert "## Model: candidate vs production" in (clone / ".infra/pull-requests/1.md").read_text()


def test_approval_deploys_and_production_becomes_the_baseline(
    clone: Path, infra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the merge, the next gate fetches production's model from the registry by digest
    and compares the candidate with it, paired."""
    monkeypatch.setenv("BASE_IMAGE", infra)
    merged = mlops(clone, "promote", "--merge", "--to", "production")
    assert merged.returncode == 0, merged.stderr
    status = mlops(clone, "status", "--no-live")
    assert "| production  | digits |" in status.stdout
    record = json.loads((clone / "artifacts/digits/package/release.json").read_text())
    assert record["release_id"] in status.stdout.split("| production")[1]
    gate = mlops(clone, "run", "--until", "gate")
    assert gate.returncode == 0, gate.stderr + gate.stdout
    blessing = json.loads((clone / "artifacts/digits/gate/blessing.json").read_text())
    assert blessing["baseline"]["environment"] == "production"
    assert blessing["baseline"]["release_id"] == record["release_id"]
    assert blessing["baseline"]["model_sha256"] == record["model_sha256"]
    assert blessing["comparison"]["delta"] == 0.0  # the same model: paired delta is exactly 0
    again = mlops(clone, "run")  # everything already in place: no new commit anywhere
    assert again.returncode == 0, again.stderr
    assert "already serves staging; no commit" in again.stdout
    assert "already serves production" in again.stdout


def gitops_state(clone: Path, env: str) -> dict[str, Any]:
    text = subprocess.run(
        ["git", "show", f"main:manifests/environments/{env}.yaml"],
        cwd=clone / ".infra/gitops.git",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def rendered(clone: Path, env: str) -> list[str]:
    return subprocess.run(
        ["git", "ls-tree", "--name-only", f"main:manifests/rendered/{env}"],
        cwd=clone / ".infra/gitops.git",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def test_the_regressor_releases_beside_the_classifier_and_rolls_back_on_its_own(
    clone: Path, infra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both example models in one GitOps repository: one state file per environment holds
    both, each has its own Deployments and Services, and each is promoted and rolled back on
    its own."""
    monkeypatch.setenv("BASE_IMAGE", infra)
    edit_model_yaml(clone, {"training.epochs": 60}, "diabetes")
    first = mlops(clone, "run", "--model", "diabetes")
    assert first.returncode == 0, first.stderr + first.stdout
    assert set(statuses(first.stdout).values()) == {"ran"}
    assert "| same_predictions" in first.stdout  # the image answered with evaluate's values
    one = json.loads((clone / "artifacts/diabetes/package/release.json").read_text())
    merged = mlops(clone, "promote", "--merge", "--to", "production", "--model", "diabetes")
    assert merged.returncode == 0, merged.stderr
    production = gitops_state(clone, "production")["models"]
    assert set(production) == {"digits", "diabetes"}
    digits_before = production["digits"]
    files = rendered(clone, "production")
    for model in ("digits", "diabetes"):
        assert f"deployment-{model}-blue.yaml" in files
        assert f"service-{model}.yaml" in files

    # A second diabetes model: its gate compares it with production's, paired on errors.
    edit_model_yaml(clone, {"training.epochs": 50}, "diabetes")
    second = mlops(clone, "run", "--model", "diabetes", "--until", "release")
    assert second.returncode == 0, second.stderr + second.stdout
    blessing = json.loads((clone / "artifacts/diabetes/gate/blessing.json").read_text())
    assert blessing["baseline"]["release_id"] == one["release_id"]
    assert set(blessing["comparison"]) >= {"candidate_mae", "baseline_mae", "wilcoxon_statistic"}
    two = json.loads((clone / "artifacts/diabetes/package/release.json").read_text())
    assert two["release_id"] != one["release_id"]
    staging = gitops_state(clone, "staging")["models"]
    assert staging["diabetes"]["active"] == "green"
    digits_staging = staging["digits"]

    back = mlops(clone, "rollback", "--model", "diabetes", "--env", "staging")
    assert back.returncode == 0, back.stderr
    staging = gitops_state(clone, "staging")["models"]
    assert staging["diabetes"]["active"] == "blue"
    assert staging["diabetes"]["blue"]["release_id"] == one["release_id"]
    assert staging["digits"] == digits_staging  # the other model is untouched
    assert gitops_state(clone, "production")["models"]["digits"] == digits_before


def test_invalid_data_stops_the_run_at_validation(clone: Path) -> None:
    import pandas as pd

    path = clone / "data/digits/test.parquet"
    df = pd.read_parquet(path)
    df.loc[0, "pixel_0"] = 99.0
    df.to_parquet(path, index=False)
    # Ingest rewrites the split from the source, so corrupt the source of truth instead: a
    # file source pointing at a bad table.
    df_all = pd.concat(
        [
            pd.read_parquet(clone / f"data/digits/{s}.parquet")
            for s in ("train", "validation", "test")
        ]
    ).drop(columns=["row_id"])
    df_all.to_csv(clone / "bad.csv", index=False)
    edit_model_yaml(clone, {"data.source": {"kind": "file", "path": "bad.csv"}})
    result = mlops(clone, "run")
    assert result.returncode == 1
    st = statuses(result.stdout)
    assert st["validate"] == "failed"
    assert st["train"] == st["evaluate"] == st["gate"] == st["package"] == st["verify"] == "not run"
    assert "pixel_0: expect_column_values_to_be_between" in result.stderr

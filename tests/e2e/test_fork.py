"""A new team's first day, as the README's "Using this template" shows it: clone the template as
a fork, `mlops configure`, `mlops init` on the team's own CSV, then `mlops run` through the
promotion request, and its approval. The table has numeric and categorical columns and a
regression target (a customer's value). Nothing in the scaffolded model is edited."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_repo
from tests.e2e.test_run import mlops, statuses
from tests.integration.test_init import value_table


@pytest.fixture(scope="module")
def fork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = copy_repo(tmp_path_factory.mktemp("template"))
    dest = tmp_path_factory.mktemp("fork") / "repo"
    subprocess.run(["git", "clone", "-q", str(template), str(dest)], check=True)
    (dest / "datasets").mkdir(parents=True)
    value_table(rows=400).to_csv(dest / "datasets/customers.csv", index=False)
    return dest


def test_configure_init_run_through_promotion(
    fork: Path, infra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASE_IMAGE", infra)
    # The fork's own registry namespace on the local registry: configure's value is used
    # because REGISTRY is not set (CI sets it for the other tests).
    monkeypatch.delenv("REGISTRY", raising=False)
    configured = mlops(
        fork,
        "configure",
        "--repo-url",
        "https://github.com/acme/ml-models.git",
        "--registry",
        "127.0.0.1:5000/acme",
        "--owners",
        "@acme/ml-platform",
    )
    assert configured.returncode == 0, configured.stderr
    init = mlops(fork, "init", "ltv", "--data", "datasets/customers.csv", "--label", "value")
    assert init.returncode == 0, init.stderr
    assert "task regression" in init.stdout
    run = mlops(fork, "run", "--model", "ltv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert set(statuses(run.stdout).values()) <= {"ran"}
    record = json.loads((fork / "artifacts/ltv/package/release.json").read_text())
    assert record["image"].startswith("127.0.0.1:5000/acme/mlops/ltv@sha256:")
    assert "opened #1 (promote/production/" in run.stdout
    body = (fork / ".infra/pull-requests/1.md").read_text()
    assert "ltv" in body
    assert "| r2 " in body  # the promotion body shows a regressor's metrics

    merged = mlops(fork, "promote", "--model", "ltv", "--merge", "--to", "production")
    assert merged.returncode == 0, merged.stderr
    status = mlops(fork, "status", "--no-live")
    assert "| production  | ltv   |" in status.stdout  # padded to the "model" header
    assert record["release_id"] in status.stdout.split("| production")[1]

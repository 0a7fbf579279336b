"""`mlops train --worker` and `--job`: a worker refuses a cluster it cannot be part of before
it reads or writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.core.distribution import local_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for var in ("TF_CONFIG", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--worker"], {}, "a worker needs TF_CONFIG"),
        (["--worker"], {"TF_CONFIG": "{"}, "TF_CONFIG is not JSON"),
        (
            ["--worker", "--workers", "3"],
            {"TF_CONFIG": local_cluster([41000, 41001], 0).to_json()},
            "--workers 3 but the cluster has 2 workers",
        ),
        (["--workers", "2", "--job", "digits-train"], {}, "needs --workers and JOB_COMPLETION"),
        (
            ["--workers", "2", "--job", "digits-train"],
            {"JOB_COMPLETION_INDEX": "2"},
            "worker index 2 is outside 0..1",
        ),
        (
            ["--workers", "2", "--job", "Digits_Train"],
            {"JOB_COMPLETION_INDEX": "0"},
            "is not a DNS label",
        ),
        (["--job", "digits-train"], {"JOB_COMPLETION_INDEX": "0"}, "needs --workers"),
    ],
)
def test_a_worker_outside_a_valid_cluster_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    before = sorted(ROOT.glob("artifacts/digits/train/*"))
    assert main(["train", *argv]) == 2
    assert message in capsys.readouterr().err
    assert sorted(ROOT.glob("artifacts/digits/train/*")) == before

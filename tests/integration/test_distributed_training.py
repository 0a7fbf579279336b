"""Multi-worker training: real worker processes, real collectives over loopback, tf_keras under
MultiWorkerMirroredStrategy; the chief's model goes through the same evaluate and gate."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import evidence
from pipelines.adapters.artifacts import sha256_file
from pipelines.cli import main
from pipelines.config import load_model
from pipelines.stages import evaluate, gate
from tests.conftest import edit_model_yaml, needs_two_cpus


@needs_two_cpus
def test_two_workers_train_a_model_the_gate_blesses(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    assert main(["train", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    # Progress says which worker is at which epoch; both ran every epoch.
    for worker in (0, 1):
        for epoch in range(1, 5):
            assert f"worker {worker}/2: epoch {epoch}/4" in out
    assert "on 2 workers" in out
    train_dir = workspace / "artifacts/digits/train"
    # Only the chief wrote, and only the artifact folder: no worker's leftovers beside it.
    assert sorted(p.name for p in train_dir.parent.iterdir() if p.name.startswith(".")) == []
    record = evidence.load(train_dir / "provenance.json", evidence.TrainingRecord)
    assert record.workers == 2
    assert record.keras.startswith("tf_keras ")
    assert record.model_sha256 == sha256_file(train_dir / "model.tflite")
    history = json.loads((train_dir / "history.json").read_text())
    assert len(history["val_accuracy"]) == 4
    ws = load_model(workspace, "digits")
    assert evaluate.run(ws).metrics.headline()["accuracy"] > 0.9
    gate.run(ws)  # raises GateFailed unless blessed
    assert evidence.load(evidence.at(ws, evidence.Blessing), evidence.Blessing).blessed


@needs_two_cpus
def test_a_dead_worker_fails_the_training_and_leaves_no_model(workspace: Path) -> None:
    edit_model_yaml(workspace, {"training.epochs": 200})  # long enough to be killed mid-way
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "train", "--workers", "2"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    pids: dict[int, int] = {}
    for line in proc.stdout:
        started = re.match(r"worker (\d)/2: started, pid (\d+)", line)
        if started:
            pids[int(started[1])] = int(started[2])
        if "worker 1/2: epoch 1/200" in line:
            os.kill(pids[1], signal.SIGKILL)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "training worker 1 of 2 failed (killed by signal 9)" in err
    assert "no model was written" in err
    train_dir = workspace / "artifacts/digits/train"
    assert not train_dir.exists()
    assert [p.name for p in train_dir.parent.iterdir() if p.name.startswith(".")] == []
    # The chief was stopped too: no worker outlives the command.
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "workers must be at least 1, not 0"),
        (["--workers", "512"], "512 workers need 512 CPUs"),
    ],
)
def test_impossible_worker_counts_are_refused_before_anything_changes(
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(workspace)
    tflite = workspace / "artifacts/digits/train/model.tflite"
    before = sha256_file(tflite)
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hint:" in err
    assert sha256_file(tflite) == before  # the previous model is untouched


def test_a_batch_the_workers_cannot_share_is_refused(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    edit_model_yaml(workspace, {"training.batch_size": 33})
    tflite = workspace / "artifacts/digits/train/model.tflite"
    before = sha256_file(tflite)
    assert main(["train", "--workers", "2"]) == 2
    assert "batch_size 33 does not split evenly across 2 workers" in capsys.readouterr().err
    assert sha256_file(tflite) == before


def test_a_worker_without_a_cluster_is_refused(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}}')
    assert main(["train", "--worker"]) == 2
    assert "not a training worker" in capsys.readouterr().err
    assert (workspace / "artifacts/digits/train/model.tflite").is_file()


@needs_two_cpus
def test_stopping_the_command_stops_its_workers(workspace: Path) -> None:
    edit_model_yaml(workspace, {"training.epochs": 200})
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "train", "--workers", "2"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    pids = []
    for line in proc.stdout:
        started = re.match(r"worker \d/2: started, pid (\d+)", line)
        if started:
            pids.append(int(started[1]))
        if len(pids) == 2:
            proc.terminate()  # SIGTERM, as a cancelled CI job sends
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "received signal 15; its workers were stopped" in err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (workspace / "artifacts/digits/train").exists()

"""`mlops tune` for real, kept tiny (2 epochs, a 2-value space, 2-3 trials): two workers
sharing one study in the SQLite file and in PostgreSQL; a worker killed with SIGKILL in the
middle of a trial, then a re-run that resumes a consistent study; SIGTERM to a two-worker
run stopping every process it started; the result flowing into DVC's view of train; an
unreachable database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines import cli
from pipelines.adapters import dvc
from pipelines.adapters.workers import STOP_TIMEOUT_S
from pipelines.config import load_model
from pipelines.evidence import TuningRecord, load
from tests.conftest import edit_model_yaml, needs_two_cpus
from tests.util import free_port

TINY: dict[str, object] = {
    "training.epochs": 2,
    "tuning.trials": 3,
    "tuning.space": {"params.dropout": {"type": "categorical", "choices": [0.1, 0.4]}},
    "tuning.pruner": {"kind": "median", "startup_trials": 1, "warmup_epochs": 0},
}


def tune(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "tune", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def record(root: Path) -> TuningRecord:
    return load(root / "artifacts/digits/tune/tuning.json", TuningRecord)


def finished(rec: TuningRecord) -> int:
    return rec.states.get("COMPLETE", 0) + rec.states.get("PRUNED", 0)


def test_two_workers_share_the_file_study_and_dvc_sees_train_changed(workspace: Path) -> None:
    edit_model_yaml(workspace, TINY)
    dvc.commit(workspace, "train-digits")
    assert dvc.changed_stages(workspace, ["train-digits"]) == set()

    proc = tune(workspace, "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote models/digits/tuned.yaml" in proc.stdout
    rec = record(workspace)
    assert finished(rec) >= 3
    assert rec.storage.startswith("sqlite:///")
    assert set(rec.states) <= {"COMPLETE", "PRUNED"}
    assert rec.best_params["params.dropout"] in (0.1, 0.4)
    assert (workspace / "artifacts/digits/tune/history.png").is_file()

    ws = load_model(workspace, "digits")
    assert ws.tuned is not None
    assert ws.tuned.study == rec.study
    assert ws.model.training.params["dropout"] == rec.best_params["params.dropout"]
    # tune made tuned.yaml a param of train: DVC now wants train to run again.
    assert dvc.changed_stages(workspace, ["train-digits"]) == {"train-digits"}

    # The study already holds its trials: a re-run adds none and rewrites the same result.
    again = tune(workspace)
    assert again.returncode == 0, again.stderr[-3000:]
    assert record(workspace).states == rec.states


def test_two_workers_share_a_postgresql_study(workspace: Path, postgres: str) -> None:
    edit_model_yaml(workspace, {**TINY, "tuning.trials": 2})
    proc = tune(workspace, "--workers", "2", "--storage", postgres)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = record(workspace)
    assert finished(rec) >= 2
    password = postgres.split(":")[2].split("@")[0]
    assert rec.storage.startswith("postgresql+psycopg://mlops:***@127.0.0.1:")
    assert password not in proc.stdout + proc.stderr
    assert password not in (workspace / "artifacts/digits/tune/tuning.json").read_text()
    assert (workspace / "models/digits/tuned.yaml").is_file()
    # Nothing of the study is kept locally: it lives in the database.
    assert not (workspace / "artifacts/digits/tune/study.db").exists()


def test_an_unreachable_database_is_exit_3_with_the_password_scrubbed(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    dsn = f"postgresql+psycopg://mlops:s3cret-pw@127.0.0.1:{free_port()}/mlops"
    code = cli.main(["tune", "--storage", dsn])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "is unreachable" in err
    assert "mlops:***@127.0.0.1" in err
    assert "s3cret-pw" not in err
    assert not (workspace / "models/digits/tuned.yaml").exists()
    assert not (workspace / "artifacts/digits/tune").exists()


def _trials(root: Path) -> list[Any]:
    import optuna

    # The worker creates the tables: a reader creating them too would race it.
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{root / 'artifacts/digits/tune/study.db'}", skip_table_creation=True
    )
    try:
        (summary,) = optuna.get_all_study_summaries(storage)
        return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _running_trial(root: Path) -> Any | None:
    if not (root / "artifacts/digits/tune/study.db").is_file():
        return None
    from sqlalchemy.exc import SQLAlchemyError

    try:
        trials = _trials(root)
    except (ValueError, SQLAlchemyError):  # the worker has not created the study yet
        return None
    return next((t for t in trials if t.state.name == "RUNNING" and t.intermediate_values), None)


def test_a_worker_killed_mid_trial_leaves_a_study_a_rerun_resumes(workspace: Path) -> None:
    edit_model_yaml(
        workspace,
        {
            **TINY,
            "training.epochs": 6,
            "tuning.trials": 2,
            "tuning.pruner": {"kind": "none"},
            "tuning.heartbeat_s": 1,
            "tuning.grace_s": 2,
        },
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "tune"],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while (killed := _running_trial(workspace)) is None:
            assert worker.poll() is None, "the worker ended before a trial was seen running"
            assert time.monotonic() < deadline, "no trial started"
            time.sleep(0.2)
        os.kill(worker.pid, signal.SIGKILL)  # mid-trial: it has reported an epoch, not finished
    finally:
        worker.kill()
        worker.wait()
    (stuck,) = [t for t in _trials(workspace) if t.state.name == "RUNNING"]
    assert stuck.number == killed.number
    time.sleep(3)  # past grace_s: the dead worker's heartbeat is now stale

    proc = tune(workspace)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = _trials(workspace)
    states = {t.number: t.state.name for t in trials}
    assert states[killed.number] == "FAIL"
    assert "RUNNING" not in states.values()
    assert "WAITING" not in states.values()
    # The killed trial was retried with its parameters, and the study reached its target.
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state.name == "COMPLETE"
    assert retry.params == killed.params
    assert sum(s in ("COMPLETE", "PRUNED") for s in states.values()) >= 2
    assert record(workspace).states["FAIL"] == 1


def _running_trials(root: Path) -> list[Any]:
    """The trials that are RUNNING and have reported an epoch (their worker is training)."""
    if not (root / "artifacts/digits/tune/study.db").is_file():
        return []
    from sqlalchemy.exc import SQLAlchemyError

    try:
        trials = _trials(root)
    except (ValueError, SQLAlchemyError):  # the worker has not created the study yet
        return []
    return [t for t in trials if t.state.name == "RUNNING" and t.intermediate_values]


def _process_group(pgid: int) -> list[int]:
    """The live processes (zombies are dead) of process group ``pgid``, read from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:  # it ended while we read
            continue
        if int(pgrp) == pgid and state != "Z":
            alive.append(int(stat.parent.name))
    return alive


@needs_two_cpus
def test_sigterm_stops_every_worker_and_writes_no_tuned_yaml(workspace: Path) -> None:
    edit_model_yaml(workspace, {**TINY, "training.epochs": 200, "tuning.pruner": {"kind": "none"}})
    err_file = workspace.parent / "tune.err"
    with err_file.open("w") as err:
        # Its own session: the process group holds mlops and everything it starts.
        parent = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "tune", "--model", "digits", "--workers", "2"],
            cwd=workspace,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while len(running := _running_trials(workspace)) < 2:
            assert parent.poll() is None, err_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "the two workers never both trained a trial"
            time.sleep(0.5)
        started = _process_group(parent.pid)
        # mlops, its spawned worker and multiprocessing's resource tracker.
        assert parent.pid in started
        assert len(started) >= 3, started
        parent.terminate()  # SIGTERM, as a cancelled CI job sends
        code = parent.wait(timeout=STOP_TIMEOUT_S + 60)
        deadline = time.monotonic() + 5
        while (left := _process_group(parent.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    stderr = err_file.read_text()
    assert code == 3, stderr[-3000:]
    assert (
        "tuning stopped: mlops received signal 15; its workers were stopped; the study keeps "
        "the finished trials, `mlops tune` resumes it" in stderr
    )
    assert left == [], f"still running after mlops ended: {left}"
    assert not (workspace / "models/digits/tuned.yaml").exists()
    assert not (workspace / "artifacts/digits/tune/tuning.json").exists()
    # mlops's own trial was failed on the way out; the stopped worker's is left to the
    # heartbeat (the resume test shows a re-run failing and retrying it).
    states = {t.number: t.state.name for t in _trials(workspace)}
    assert sorted(states[t.number] for t in running) == ["FAIL", "RUNNING"]

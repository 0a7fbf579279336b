"""`mlops tune` with 1 and 2 local workers: trials per minute on this machine.

Runs in a temporary clone taken through ingest and validate. Each run starts a fresh study (the
SQLite file removed) of ``--trials`` trials of ``--epochs`` epochs over the digits search space,
pruning off so every trial does the same work; 1 and 2 workers alternate. Two rates: over the
command's wall time (process and TensorFlow start-up included), and over the search itself
(first trial's start to last trial's end, from the study). Each worker trains on one thread,
so 2 workers use the 2 cores that 1 worker leaves half idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PY, clone, header, median, table


def mlops(repo: Path, *args: str) -> None:
    proc = subprocess.run(
        [PY, "-m", "pipelines.cli", *args],
        cwd=repo,
        env={**os.environ, "CI": "1"},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"mlops {args[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def search_span(repo: Path) -> tuple[int, float]:
    """(finished trials, seconds from the first trial's start to the last one's end)."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{repo / 'artifacts/digits/tune/study.db'}")
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = [
        t
        for t in optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
        if t.state.name in ("COMPLETE", "PRUNED")
    ]
    storage.remove_session()
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    return len(trials), (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per worker count")
    parser.add_argument("--trials", type=int, default=6, help="trials per study")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import edit_model_yaml

    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "repo")
        edit_model_yaml(
            repo,
            {
                "training.epochs": args.epochs,
                "tuning.trials": args.trials,
                "tuning.pruner": {"kind": "none"},
            },
        )
        mlops(repo, "run", "--until", "validate")
        wall: dict[int, list[float]] = {1: [], 2: []}
        search: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.runs):
            for workers in (1, 2):
                shutil.rmtree(repo / "artifacts/digits/tune", ignore_errors=True)
                start = time.perf_counter()
                mlops(repo, "tune", "--workers", str(workers))
                seconds = time.perf_counter() - start
                finished, span = search_span(repo)
                wall[workers].append(finished / seconds * 60)
                search[workers].append(finished / span * 60)

    header(
        f"mlops tune: trials per minute, {args.trials} trials of {args.epochs} epochs, "
        f"{args.runs} runs each, medians",
        "one thread per worker",
    )
    rows = []
    for workers in (1, 2):
        rows.append(
            [
                workers,
                f"{median(wall[workers]):.1f}",
                f"{median(search[workers]):.1f}",
                f"{median(wall[workers]) / median(wall[1]):.2f}x",
                f"{median(search[workers]) / median(search[1]):.2f}x",
            ]
        )
    print(
        table(
            [
                "workers",
                "trials/min (wall)",
                "trials/min (search)",
                "ratio (wall)",
                "ratio (search)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

"""Training time per epoch with 1 and 2 workers: `mlops train` in one process (Keras 3, the
default, byte-reproducible) vs `mlops train --workers 2` (two local processes over loopback,
MultiWorkerMirroredStrategy with tf_keras), on digits, in a clone of this checkout.

Time per epoch is the slope between two trainings of E1 and E2 epochs, (T(E2) - T(E1)) /
(E2 - E1): what each worker count costs per epoch once started, without the start-up (imports,
the workers' rendezvous, export) that both trainings share. Wall time of the E2 training is
reported too. The global batch is the same (batch_size), so both do the same steps per epoch;
with two workers each computes half of every batch and the gradients are all-reduced.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import PY, clone, header, median, table


def set_epochs(repo: Path, epochs: int) -> None:
    path = repo / "models/digits/model.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["training"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def mlops(repo: Path, *args: str) -> float:
    """Seconds `python -m pipelines.cli ARGS` takes in ``repo`` (that checkout's code)."""
    env = {**os.environ, "CI": "1", "PYTHONPATH": str(repo)}
    start = time.perf_counter()
    subprocess.run(
        [PY, "-m", "pipelines.cli", *args],
        cwd=repo,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--short", type=int, default=2, help="E1 epochs (default: %(default)s)")
    parser.add_argument("--long", type=int, default=12, help="E2 epochs (default: %(default)s)")
    args = parser.parse_args()
    if args.long <= args.short:
        raise SystemExit("--long must exceed --short")

    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "repo")
        print("preparing the data (ingest, validate)", file=sys.stderr)
        mlops(repo, "ingest")
        mlops(repo, "validate")
        times: dict[tuple[int, int], list[float]] = {}
        for run in range(args.runs):
            # Alternated, so that a slower spell of a shared machine hits both counts.
            for epochs in (args.short, args.long):
                set_epochs(repo, epochs)
                for workers in (1, 2):
                    seconds = mlops(repo, "train", "--workers", str(workers))
                    times.setdefault((workers, epochs), []).append(seconds)
                    print(
                        f"run {run + 1}: {workers} worker(s), {epochs} epochs: {seconds:.2f} s",
                        file=sys.stderr,
                    )

    header(
        f"Training digits: 1 vs 2 workers ({args.runs} runs each, medians)",
        "both workers on this machine's cores, over loopback",
    )
    per_epoch = {
        w: (median(times[(w, args.long)]) - median(times[(w, args.short)]))
        / (args.long - args.short)
        for w in (1, 2)
    }
    rows = []
    for w in (1, 2):
        rows.append(
            [
                f"{w} worker{'s' if w > 1 else ''}"
                + (" (MWMS, tf_keras)" if w > 1 else " (one process, Keras 3)"),
                f"{per_epoch[w]:.3f}",
                f"{per_epoch[w] / per_epoch[1]:.2f}x",
                f"{median(times[(w, args.short)]):.2f}",
                f"{median(times[(w, args.long)]):.2f}",
            ]
        )
    print(
        table(
            [
                "training",
                "s per epoch",
                "vs 1 worker",
                f"wall, {args.short} epochs (s)",
                f"wall, {args.long} epochs (s)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

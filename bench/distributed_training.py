"""Training time per epoch with 1 and 2 workers: `mlops train` in one process (Keras 3, the
default, byte-reproducible) vs `mlops train --workers 2` (two local processes over loopback,
MultiWorkerMirroredStrategy with tf_keras), on digits, in a clone of this checkout.

An epoch's time is read from the training's own progress lines as they arrive (Keras' "Epoch
k/E" line with one worker; the chief's "worker 0/2: epoch k/E" line with two): the interval
between consecutive epochs, training and validation included. The first epoch (graph tracing)
is left out, and so is start-up (imports, the workers' rendezvous, export), which the wall time
column shows. The global batch is the same (batch_size), so both do the same steps per epoch;
with two workers each computes half of every batch and the gradients are all-reduced.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import PY, clone, header, median, table

EPOCH_LINE = re.compile(r"^(Epoch (\d+)/\d+|worker 0/\d+: epoch (\d+)/\d+)")


def set_epochs(repo: Path, epochs: int) -> None:
    path = repo / "models/digits/model.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["training"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def mlops(repo: Path, *args: str) -> tuple[float, list[float]]:
    """Wall seconds of `python -m pipelines.cli ARGS` in ``repo`` (that checkout's code), and
    the arrival time of each epoch line."""
    # CI unset: Keras prints one line per epoch (it is silent under CI).
    env = {**os.environ, "CI": "", "PYTHONPATH": str(repo), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "pipelines.cli", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    marks = [time.perf_counter() for line in proc.stdout if EPOCH_LINE.match(line)]
    if proc.wait() != 0:
        raise SystemExit(f"mlops {' '.join(args)} failed ({proc.returncode})")
    return time.perf_counter() - start, marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8, help="default: %(default)s")
    args = parser.parse_args()
    if args.epochs < 3:
        raise SystemExit("--epochs must be at least 3 (the first is left out)")

    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "repo")
        print("preparing the data (ingest, validate)", file=sys.stderr)
        mlops(repo, "ingest")
        mlops(repo, "validate")
        set_epochs(repo, args.epochs)
        walls: dict[int, list[float]] = {1: [], 2: []}
        epochs: dict[int, list[float]] = {1: [], 2: []}
        for run in range(args.runs):
            for workers in (1, 2):  # alternated: a busier spell of a shared machine hits both
                wall, marks = mlops(repo, "train", "--workers", str(workers))
                if len(marks) != args.epochs:
                    raise SystemExit(f"saw {len(marks)} epoch lines, expected {args.epochs}")
                per_epoch = median([b - a for a, b in itertools.pairwise(marks[1:])])
                walls[workers].append(wall)
                epochs[workers].append(per_epoch)
                print(
                    f"run {run + 1}: {workers} worker(s): {per_epoch:.3f} s/epoch, "
                    f"wall {wall:.1f} s",
                    file=sys.stderr,
                )

    header(
        f"Training digits, {args.epochs} epochs: 1 vs 2 workers ({args.runs} runs, medians)",
        "both workers on this machine's cores, over loopback",
    )
    one = median(epochs[1])
    rows = [
        [
            "1 worker (one process, Keras 3)" if w == 1 else "2 workers (MWMS, tf_keras)",
            f"{median(epochs[w]):.3f}",
            f"{median(epochs[w]) / one:.2f}x",
            f"{median(walls[w]):.1f}",
        ]
        for w in (1, 2)
    ]
    print(table(["training", "s per epoch", "vs 1 worker", "wall time (s)"], rows))


if __name__ == "__main__":
    main()

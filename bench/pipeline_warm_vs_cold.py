"""Cold `mlops run` (after installs, no data or artifacts) vs a warm no-op re-run.

Both run as subprocesses of this script in one temporary clone, alternately, so they share
the machine's state. Prints per-stage medians, the wall-time medians, their ratio, and the
overhead beyond the stages' own work (wall time minus the sum of stage times).

Goals (issue 2): warm no-op under 3 s; overhead under 10% of a cold run.
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

from _common import MLOPS, clone, header, median, table

STAGES = ["ingest", "validate", "train", "evaluate", "gate"]


def run_once(repo: Path, until: str) -> tuple[float, dict[str, float], dict[str, str]]:
    env = {**os.environ, "CI": "1"}
    start = time.perf_counter()
    proc = subprocess.run(
        [MLOPS, "run", "--until", until], cwd=repo, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"mlops run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    seconds: dict[str, float] = {}
    status: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 4 and cells[1] in STAGES:
            status[cells[1]] = cells[2]
            seconds[cells[1]] = float(cells[3])
    return wall, seconds, status


def make_cold(repo: Path) -> None:
    for rel in ("artifacts", "data"):
        shutil.rmtree(repo / rel, ignore_errors=True)
    (repo / "dvc.lock").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="cold and warm runs each")
    parser.add_argument(
        "--until",
        default="gate",
        choices=STAGES,
        help="last stage (default: gate, the ML half the goals are about)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "repo")
        cold, warm = [], []
        for i in range(args.runs):
            make_cold(repo)
            cold.append(run_once(repo, args.until))
            warm.append(run_once(repo, args.until))
            print(
                f"run {i + 1}/{args.runs}: cold {cold[-1][0]:.2f}s, warm {warm[-1][0]:.2f}s",
                file=sys.stderr,
            )
    stages = STAGES[: STAGES.index(args.until) + 1]
    expected = {s: {"ingest": "ran", "gate": "ran"}.get(s, "skipped") for s in stages}
    if any(s != expected for _, _, s in warm):
        raise SystemExit(f"a warm run did not skip as expected: {warm}")

    def stage_median(
        runs: list[tuple[float, dict[str, float], dict[str, str]]], stage: str
    ) -> float:
        return median([r[1].get(stage, 0.0) for r in runs])

    rows = []
    for stage in stages:
        rows.append(
            [
                stage,
                f"{stage_median(cold, stage):.2f}",
                warm[0][2][stage],
                f"{stage_median(warm, stage):.2f}",
            ]
        )
    cold_wall = median([r[0] for r in cold])
    warm_wall = median([r[0] for r in warm])
    cold_stages = median([sum(r[1].values()) for r in cold])
    overhead = cold_wall - cold_stages
    header(f"`mlops run --until {args.until}`: cold vs warm no-op ({args.runs} runs each, medians)")
    print(table(["stage", "cold (s)", "warm status", "warm (s)"], rows))
    print()
    print(
        table(
            ["measure", "cold", "warm no-op", "goal"],
            [
                ["wall time (s)", f"{cold_wall:.2f}", f"{warm_wall:.2f}", "warm < 3 s"],
                ["warm / cold", "", f"{warm_wall / cold_wall:.3f}", ""],
                ["sum of stage times (s)", f"{cold_stages:.2f}", "", ""],
                ["overhead beyond stages (s)", f"{overhead:.2f}", "", ""],
                ["overhead / wall time", f"{overhead / cold_wall:.1%}", "", "< 10%"],
            ],
        )
    )


if __name__ == "__main__":
    main()

"""`mlops init` on a large table: the whole command (read, profile, render, validate, write)
vs the floor a hand-written profile costs, pandas reading the same CSV and describing it.

Both run in this process on the same CSV, alternately; prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import ROOT, clone, header, median, table


def synthetic(rows: int, seed: int = 0) -> pd.DataFrame:
    """A churn-like table: ints, floats, a 0/1 flag, a categorical, a nullable column."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows),
            "monthly": rng.normal(70, 20, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro", "team", "enterprise"], rows),
            "region": rng.choice([f"r{i}" for i in range(30)], rows),
            "autopay": rng.integers(0, 2, rows),
            "rating": np.where(rng.random(rows) < 0.1, np.nan, rng.integers(1, 6, rows)),
            **{f"usage_{i}": rng.gamma(2.0, 10.0, rows) for i in range(10)},
            "churned": rng.integers(0, 2, rows),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from pipelines.stages import init

    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "repo")
        (repo / "datasets").mkdir()
        csv = repo / "datasets/table.csv"
        synthetic(args.rows).to_csv(csv, index=False)
        ours: list[float] = []
        floor: list[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            pd.read_csv(csv).describe(include="all")
            floor.append(time.perf_counter() - t0)
            shutil.rmtree(repo / "models/table", ignore_errors=True)
            t0 = time.perf_counter()
            r = init.run(repo, "table", "datasets/table.csv", "churned")
            ours.append(time.perf_counter() - t0)
            assert r.written
        header(
            f"mlops init on a {args.rows:,}-row, {len(r.inferred.features) + 1}-column CSV "
            f"({csv.stat().st_size / 1e6:.1f} MB), {args.runs} runs each, alternately"
        )
    print(
        table(
            ["what", "median s", "ratio to the floor"],
            [
                ["pandas read_csv + describe (the floor)", f"{median(floor):.2f}", "1.00"],
                [
                    "`mlops init` (read, profile, render, validate, write)",
                    f"{median(ours):.2f}",
                    f"{median(ours) / median(floor):.2f}",
                ],
            ],
        )
    )
    print(f"\nrepository: {ROOT}")


if __name__ == "__main__":
    main()

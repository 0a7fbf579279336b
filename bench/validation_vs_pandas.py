"""The project's expectation suite (GX Checkpoint, Data Docs included) vs the same checks as
vectorized pandas expressions (the physical floor), on a large synthetic digits-like table.

Both run in this process on the same DataFrame; prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import ROOT, header, median, table

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def synthetic(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 17, size=(rows, 64)).astype(np.float64)
    df = pd.DataFrame(pixels, columns=[f"pixel_{i}" for i in range(64)])
    df.insert(0, "row_id", np.arange(rows, dtype=np.int64))
    df["label"] = rng.integers(0, 10, size=rows).astype(np.int64)
    return df


def pandas_checks(
    df: pd.DataFrame, features: list[str], classes: list[int], lo: float, hi: float, min_rows: int
) -> list[bool]:
    """The `rows` suite of models/digits/expectations.py, one vectorized expression per check."""
    x = df[features]
    label = df["label"]
    return [
        list(df.columns) == ["row_id", *features, "label"],
        len(df) >= min_rows,
        str(label.dtype) == "int64",
        bool(label.notna().all()),
        bool(label.isin(classes).all()),
        set(label.unique().tolist()) == set(classes),
        bool(df["row_id"].is_unique),
        not bool(x.duplicated().any()),
        all(str(t) == "float64" for t in x.dtypes),
        bool(x.notna().to_numpy().all()),
        bool(((x.to_numpy() >= lo) & (x.to_numpy() <= hi)).all()),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from pipelines.adapters import gx, modelcode
    from pipelines.config import load_model

    ws = load_model(ROOT, "digits")
    suite = modelcode.load(ws, "expectations.py")
    data = ws.model.data
    df = synthetic(args.rows)
    # Random 8x8 images of 17 levels: duplicates are astronomically unlikely, so both sides
    # do the full work of proving uniqueness.
    gx_times, pd_times = [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            outcome = gx.run_checkpoints(
                "bench", [("train", "rows", df)], {"rows": suite.rows(data)}, Path(tmp) / "docs"
            )
            gx_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        verdicts = pandas_checks(
            df,
            data.features.columns,
            data.label.classes,
            data.features.min,
            data.features.max,
            data.expectations.min_rows,
        )
        pd_times.append(time.perf_counter() - start)
        if not (outcome.success and all(verdicts)):
            raise SystemExit(f"checks disagree with clean data: {outcome.failures[:3]} {verdicts}")
        print(
            f"run {i + 1}/{args.runs}: GX {gx_times[-1]:.2f}s, pandas {pd_times[-1]:.3f}s",
            file=sys.stderr,
        )
    g, p = median(gx_times), median(pd_times)
    n_exp = len(outcome.results)
    header(f"Validation of {args.rows:,} rows x {df.shape[1]} columns ({args.runs} runs, medians)")
    print(
        table(
            ["implementation", "checks", "median (s)", "rows/s", "ratio to floor"],
            [
                [
                    "project suite (GX 1.x Checkpoint + Data Docs)",
                    n_exp,
                    f"{g:.2f}",
                    f"{args.rows / g:,.0f}",
                    f"{g / p:.1f}x",
                ],
                [
                    "vectorized pandas (floor)",
                    len(verdicts),
                    f"{p:.3f}",
                    f"{args.rows / p:,.0f}",
                    "1.0x",
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()

"""validate: run the model's Great Expectations suite over every split as Checkpoints.

Writes Data Docs and summary.json whatever the verdict, so a failure can be inspected; writes
reference_stats.json (the training data's profile for later skew and drift checks) only when
the data is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.adapters import gx, modelcode
from pipelines.adapters.artifacts import provenance, read_json, staged_dir, write_json
from pipelines.adapters.datasets import fingerprint, read_splits
from pipelines.config import Workspace
from pipelines.errors import ConfigError, DataInvalid

SUMMARY = "summary.json"
REFERENCE_STATS = "reference_stats.json"


@dataclass(frozen=True)
class ValidateResult:
    success: bool
    evaluated: int
    failures: list[str]
    summary: Path
    docs_index: Path


def label_distribution(ws: Workspace, df: pd.DataFrame) -> pd.DataFrame:
    """One row per declared class (index = class) with its count and fraction of the split."""
    classes = ws.model.data.label.classes
    counts = df[ws.model.data.label.column].value_counts()
    out = pd.DataFrame({"count": [int(counts.get(c, 0)) for c in classes]}, index=classes)
    out.index.name = "class"
    out["fraction"] = out["count"] / max(len(df), 1)
    return out


def reference_stats(ws: Workspace, train: pd.DataFrame) -> dict[str, Any]:
    spec = ws.model.data.features
    desc = train[spec.columns].describe(percentiles=[0.01, 0.25, 0.5, 0.75, 0.99])
    features = {
        col: {str(stat): float(desc[col][stat]) for stat in desc.index if stat != "count"}
        for col in spec.columns
    }
    dist = label_distribution(ws, train)
    return {
        "rows": len(train),
        "features": features,
        "label_distribution": {str(c): float(f) for c, f in dist["fraction"].items()},
    }


def run(ws: Workspace) -> ValidateResult:
    splits = read_splits(ws)
    suite = modelcode.load(ws, "expectations.py")
    data = ws.model.data
    batches: list[tuple[str, str, pd.DataFrame]] = [(s, "rows", df) for s, df in splits.items()]
    if all(data.label.column in df.columns for df in splits.values()):
        batches += [(f"{s}_balance", "balance", label_distribution(ws, df))
                    for s, df in splits.items()]
    batches.append(("all_splits", "cross_split", pd.concat(splits.values(), ignore_index=True)))
    suites = {"rows": suite.rows(data), "balance": suite.balance(data),
              "cross_split": suite.cross_split(data)}

    final = ws.artifacts("validate")
    with staged_dir(final) as out:
        outcome = gx.run_checkpoints(ws.name, batches, suites, out / "data_docs")
        failures = [f.describe() for f in outcome.failures]
        write_json(out / SUMMARY, {
            "model": ws.name,
            "success": outcome.success,
            "evaluated_expectations": len(outcome.results),
            "failed_expectations": len(failures),
            "failures": failures,
            "rows": {s: len(df) for s, df in splits.items()},
            "data_docs": "data_docs/index.html",
            "data_fingerprint": fingerprint(ws),
            "provenance": provenance(ws.root, ws.model.section_hash("data")),
        })
        if outcome.success:
            write_json(out / REFERENCE_STATS, reference_stats(ws, splits["train"]))
    docs = final / "data_docs" / "index.html"
    if not outcome.success:
        listing = "\n".join(f"  - {f}" for f in failures)
        raise DataInvalid(
            f"data validation failed: {len(failures)} of {len(outcome.results)} expectations "
            f"broke\n{listing}",
            hint=f"open {docs} for the full report; fix the data, then re-run",
        )
    return ValidateResult(True, len(outcome.results), [], final / SUMMARY, docs)


def require_valid_data(ws: Workspace) -> dict[str, Any]:
    """Downstream guard: the current data must have passed validation. Returns the summary."""
    path = ws.artifacts("validate") / SUMMARY
    if not path.is_file():
        raise ConfigError(f"no validation summary at {path}", hint="run `mlops validate` first")
    summary: dict[str, Any] = read_json(path)
    if not summary.get("success"):
        raise DataInvalid(f"the data failed validation ({path}); refusing to go on",
                          hint="fix the data and re-run `mlops validate`")
    if summary.get("data_fingerprint") != fingerprint(ws):
        raise ConfigError("the data changed since it was validated",
                          hint="run `mlops validate` again")
    return summary

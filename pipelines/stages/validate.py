"""validate: run the model's Great Expectations suite over every split as Checkpoints.

Writes Data Docs and summary.json whatever the verdict, so a failure can be inspected; writes
reference_stats.json (the training data's profile for later skew and drift checks) only when
the data is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines import evidence
from pipelines.adapters import gx, modelcode
from pipelines.adapters.artifacts import SUMMARY, fingerprint, invalidate, staged_dir
from pipelines.adapters.datasets import ROW_ID, read_splits
from pipelines.config import Workspace
from pipelines.errors import DataInvalid
from pipelines.evidence import Provenance, ReferenceStats, ValidationSummary


@dataclass(frozen=True)
class ValidateResult:
    """The validation verdict, expectations evaluated, failures, and the files written."""

    success: bool
    evaluated: int
    failures: list[str]
    summary: Path
    docs_index: Path


def label_distribution(ws: Workspace, df: pd.DataFrame) -> pd.DataFrame:
    """One row per declared class (index = class) with its count and fraction of the split."""
    classes = ws.model.classes
    counts = df[ws.model.data.label.column].value_counts()
    out = pd.DataFrame({"count": [int(counts.get(c, 0)) for c in classes]}, index=classes)
    out.index.name = "class"
    out["fraction"] = out["count"] / max(len(df), 1)
    return out


def reference_stats(ws: Workspace, train: pd.DataFrame) -> ReferenceStats:
    """The training features' profile, the reference for later skew and drift checks."""
    # Numbers only: the image's pixels, or a table's numeric and bool features (a categorical
    # column's profile is its encoded columns', in the reference profile train writes).
    columns = [
        c
        for c in ws.model.data.feature_columns
        if pd.api.types.is_numeric_dtype(train[c]) or pd.api.types.is_bool_dtype(train[c])
    ]
    features: dict[str, dict[str, float]] = {}
    if columns:  # pandas cannot describe no columns (a table of categorical features only)
        desc = train[columns].astype(float).describe(percentiles=[0.01, 0.25, 0.5, 0.75, 0.99])
        features = {
            col: {str(stat): float(desc[col][stat]) for stat in desc.index if stat != "count"}
            for col in columns
        }
    dist = label_distribution(ws, train)
    return ReferenceStats(
        rows=len(train),
        features=features,
        label_distribution={str(c): float(f) for c, f in dist["fraction"].items()},
    )


def distinct_within(ws: Workspace, df: pd.DataFrame) -> pd.DataFrame:
    """The split without repeats of an id or an image inside it (the rows suite reports those),
    so that a repeat in the stacked splits can only be a leak from one split into another."""
    keep = pd.Series(True, index=df.index)
    for key in ([ROW_ID], ws.model.data.feature_columns):
        if all(c in df.columns for c in key):
            try:
                keep &= ~df.duplicated(subset=key)
            except TypeError:  # unhashable cells (lists from Parquet): the rows suite says so
                continue
    return df[keep]


def _numeric_labels(ws: Workspace, splits: dict[str, pd.DataFrame]) -> bool:
    """Class balance only means something for numeric labels; otherwise the rows suite already
    names the label column's dtype, and ten "class k: 0.000" lines would bury it."""
    column = ws.model.data.label.column
    return all(
        column in df.columns
        and pd.api.types.is_numeric_dtype(df[column])
        and not pd.api.types.is_bool_dtype(df[column])
        for df in splits.values()
    )


def run(ws: Workspace) -> ValidateResult:
    """Run the expectation suites over every split; write the summary and Data Docs."""
    final = ws.artifacts("validate")
    invalidate(final)  # a run that errors must not leave an earlier summary behind
    splits = read_splits(ws)
    suite = modelcode.load(ws, "expectations.py")
    data = ws.model.data
    batches: list[tuple[str, str, pd.DataFrame]] = [(s, "rows", df) for s, df in splits.items()]
    regression = ws.model.task == "regression"
    if not regression and _numeric_labels(ws, splits):
        batches += [
            (f"{s}_balance", "balance", label_distribution(ws, df)) for s, df in splits.items()
        ]
    batches.append(
        (
            "all_splits",
            "cross_split",
            pd.concat([distinct_within(ws, df) for df in splits.values()], ignore_index=True),
        )
    )
    suites = {
        # A table's schema, and a regressor's target range, are checked whatever the model's
        # own suite says (gx.py).
        "rows": suite.rows(data)
        + gx.schema_expectations(data.features)
        + (gx.target_expectations(data.label) if regression else []),
        "balance": suite.balance(data),
        "cross_split": suite.cross_split(data),
    }

    with staged_dir(final) as out:
        outcome = gx.run_checkpoints(ws.name, batches, suites, out / "data_docs")
        failures = [f.describe() for f in outcome.failures]
        evidence.save(
            out / SUMMARY,
            ValidationSummary(
                model=ws.name,
                success=outcome.success,
                evaluated_expectations=len(outcome.results),
                failed_expectations=len(failures),
                failures=failures,
                rows={s: len(df) for s, df in splits.items()},
                data_docs="data_docs/index.html",
                data_fingerprint=fingerprint(ws),
                provenance=evidence.made(Provenance, ws.root, ws.model.section_hash("data")),
            ),
        )
        if outcome.success:
            evidence.save(out / ReferenceStats.FILE, reference_stats(ws, splits["train"]))
    docs = final / "data_docs" / "index.html"
    if not outcome.success:
        listing = "\n".join(f"  - {f}" for f in failures)
        raise DataInvalid(
            f"data validation failed: {len(failures)} of {len(outcome.results)} expectations "
            f"broke\n{listing}",
            hint=f"open {docs} for the full report; fix the data, then re-run",
        )
    return ValidateResult(True, len(outcome.results), [], final / SUMMARY, docs)

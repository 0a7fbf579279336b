"""ingest: write the dataset and its deterministic train/validation/test split under data/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.adapters import dvc
from pipelines.adapters.artifacts import invalidate
from pipelines.adapters.datasets import ROW_ID, parquet_bytes, read_table, write_if_changed
from pipelines.config import SPLITS, FileSource, Workspace
from pipelines.errors import ConfigError, DataInvalid


@dataclass(frozen=True)
class IngestResult:
    """Rows per split, whether data/ changed, and the data's MD5."""

    rows: dict[str, int]
    changed: bool
    data_md5: str


def _load_source(ws: Workspace) -> pd.DataFrame:
    data = ws.model.data
    if isinstance(data.source, FileSource):
        if data.source.dvc:
            # Kept in the team's DVC remote, not in git: a fresh clone or a CI runner pulls it.
            dvc.pull_source(ws.root, data.source.path)
        elif (
            not (ws.root / data.source.path).exists()
            and (ws.root / dvc.dvc_file(data.source.path)).is_file()
        ):
            raise ConfigError(
                f"data source {data.source.path} is missing here, and DVC tracks it "
                f"({dvc.dvc_file(data.source.path)})",
                hint="say so in model.yaml, and ingest pulls it from the DVC remote: "
                f"source: {{kind: file, path: {data.source.path}, dvc: true}}",
            )
        df = read_table(ws.root / data.source.path, "data source")
        if df.empty:
            raise DataInvalid(f"data source {data.source.path} has a header but no rows")
        if data.label.column not in df.columns:
            raise DataInvalid(
                f"data source {data.source.path} has no label column {data.label.column!r}",
                hint=f"columns found: {', '.join(map(str, df.columns[:10]))}…",
            )
        if ROW_ID not in df.columns:
            df.insert(0, ROW_ID, np.arange(len(df), dtype=np.int64))
        return df
    from sklearn import datasets  # the bundled copies: no network

    if data.source.kind == "sklearn_diabetes":
        bunch = datasets.load_diabetes(scaled=False)
        df = pd.DataFrame(bunch.data, columns=bunch.feature_names)
        # Whole numbers in the source: age in years, sex coded 1 or 2.
        df = df.astype({"age": np.int64, "sex": np.int64})
        target = bunch.target.astype(np.float64)
    else:
        bunch = datasets.load_digits()
        df = pd.DataFrame(bunch.data.astype(np.float64), columns=data.feature_columns)
        target = bunch.target.astype(np.int64)
    df.insert(0, ROW_ID, np.arange(len(df), dtype=np.int64))
    df[data.label.column] = target
    return df


def split_frame(ws: Workspace, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A classifier's is stratified when every class can be split; otherwise (and always for a
    regressor, whose target has no classes) a plain seeded shuffle. The class-balance
    expectations in validate report a classifier's imbalance."""
    from sklearn.model_selection import train_test_split

    spec = ws.model.data.split
    idx = np.arange(len(df))
    val_share = spec.validation / (1 - spec.test)

    def split(labels: pd.Series | None) -> tuple[Any, Any, Any]:
        rest, test = train_test_split(
            idx, test_size=spec.test, random_state=spec.seed, stratify=labels
        )
        strata = None if labels is None else labels.iloc[rest]
        train, val = train_test_split(
            rest, test_size=val_share, random_state=spec.seed, stratify=strata
        )
        return train, val, test

    if ws.model.task == "regression":
        train, val, test = split(None)
    else:
        try:
            train, val, test = split(df[ws.model.data.label.column])
        except (ValueError, TypeError):  # TypeError: labels of mixed types cannot be sorted
            train, val, test = split(None)
    parts = {"train": train, "validation": val, "test": test}
    return {name: df.iloc[np.sort(parts[name])].reset_index(drop=True) for name in SPLITS}


def run(ws: Workspace) -> IngestResult:
    """Write the dataset and its split; on failure, the last validation is invalidated."""
    try:
        return _ingest(ws)
    except BaseException:
        # data/ is not what the source holds (and may be half-written): the last validation
        # must not vouch for it. Only on failure: a warm run keeps its cached validation.
        invalidate(ws.artifacts("validate"))
        raise


def _ingest(ws: Workspace) -> IngestResult:
    df = _load_source(ws)
    splits = split_frame(ws, df)
    changed = False
    try:
        blobs = {name: parquet_bytes(splits[name]) for name in SPLITS}
    except (pa.ArrowException, ValueError, TypeError) as exc:  # mixed types in one column
        raise DataInvalid(
            f"the data source has a column Parquet cannot store: {exc}",
            hint="give every column one type (numbers, or text)",
        ) from exc
    for name in SPLITS:
        changed |= write_if_changed(ws.split_path(name), blobs[name])
    md5 = dvc.track_data(ws.root, force=changed)
    return IngestResult(rows={k: len(v) for k, v in splits.items()}, changed=changed, data_md5=md5)

"""Reading and writing the tabular dataset (Parquet under ``data/<model>/``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from pipelines.adapters.artifacts import write_bytes
from pipelines.config import SPLITS, Workspace
from pipelines.errors import ConfigError, DataInvalid
from pipelines.serving.features import ImageSchema, is_null

ROW_ID = "row_id"


def read_table(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV or Parquet file; unreadable or empty files are invalid data (exit 1)."""
    if not path.is_file():
        raise ConfigError(
            f"{what}: {path} does not exist",
            hint="run `mlops ingest` first, or fix the configured path",
        )
    if path.stat().st_size == 0:
        raise DataInvalid(
            f"{what}: {path} is an empty file (0 bytes)",
            hint="re-create it, e.g. with `mlops ingest`",
        )
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:
        kind = path.suffix[1:] or "data"
        raise DataInvalid(f"{what}: {path} is not a readable {kind} file: {exc}") from exc


def read_splits(ws: Workspace) -> dict[str, pd.DataFrame]:
    """Every data split of the workspace, by split name."""
    return {split: read_table(ws.split_path(split), f"{split} split") for split in SPLITS}


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """Serialise deterministically: no pandas metadata (it embeds the pandas version)."""
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace ``path`` only if its bytes differ, so unchanged files keep their mtime (and DVC's
    hash cache stays warm)."""
    if path.is_file() and path.read_bytes() == data:
        return False
    write_bytes(path, data)
    return True


# A classifier's class indices (int64) or a regressor's targets (float32).
Labels = NDArray[Any]


def model_inputs(ws: Workspace, df: pd.DataFrame) -> NDArray[np.float32]:
    """The model inputs of a table's rows, by the schema's one preprocessing
    (pipelines/serving/features.py, which the server runs too): (n, h, w, 1) for the image
    shorthand, (n, width) encoded named features otherwise."""
    schema = ws.model.data.feature_schema()
    if isinstance(schema, ImageSchema):
        return schema.encode(df[list(schema.names)].to_numpy(dtype=np.float64))
    # object arrays: each value as pandas holds it (NaN or NA for a null), which encode reads
    return schema.encode([df[name].to_numpy(dtype=object) for name in schema.names])


def monitored(ws: Workspace, df: pd.DataFrame) -> NDArray[np.float64]:
    """The vectors the reference profile and the live input gauges describe: the raw pixels of
    an image model, the encoded model inputs of a model of named features."""
    schema = ws.model.data.feature_schema()
    if isinstance(schema, ImageSchema):
        return schema.monitored(df[list(schema.names)].to_numpy(dtype=np.float64))
    return schema.monitored(model_inputs(ws, df))


def features_and_labels(ws: Workspace, df: pd.DataFrame) -> tuple[NDArray[np.float32], Labels]:
    """Model inputs (see model_inputs), plus each row's class index (a classifier) or target
    value (a regressor, float32 as the network is fitted on).

    A classifier predicts the position of a class in ``data.label.classes``, so labels such as
    [3, 5, 7] work as well as 0..9. Validation has already rejected unknown labels.
    """
    x = model_inputs(ws, df)
    if ws.model.task == "regression":
        return x, df[ws.model.data.label.column].to_numpy(dtype=np.float32)
    index = {c: i for i, c in enumerate(ws.model.classes)}
    y = np.array([index[int(v)] for v in df[ws.model.data.label.column]], dtype=np.int64)
    return x, y


def json_value(value: Any) -> Any:
    """A table cell as JSON holds it: numpy scalars as Python's, missing values as null."""
    if is_null(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def request_instances(ws: Workspace, df: pd.DataFrame, named: bool = True) -> list[Any]:
    """The rows of a table as a client sends them: lists of numbers for the image shorthand;
    objects keyed by feature name (TF Serving's row format), or positional rows when
    ``named`` is False, for named features."""
    columns = ws.model.data.feature_columns
    schema = ws.model.data.feature_schema()
    if isinstance(schema, ImageSchema):
        rows: list[Any] = df[columns].to_numpy(dtype=np.float64).tolist()
        return rows
    # A column of integers with a null is float in pandas: send 3, not 3.0, for an int feature
    # or an integer vocabulary, as a client would.
    integral = [
        f.type == "int" or (f.type == "categorical" and isinstance(f.values[0], int))
        for f in schema.features
    ]
    values = [
        [
            _integral(json_value(v)) if i else json_value(v)
            for v, i in zip(row, integral, strict=True)
        ]
        for row in df[columns].itertuples(index=False)
    ]
    if not named:
        return values
    return [dict(zip(columns, row, strict=True)) for row in values]

"""Reading and writing the tabular dataset (Parquet under ``data/<model>/``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from pipelines.adapters.artifacts import write_bytes
from pipelines.config import SPLITS, Workspace
from pipelines.errors import ConfigError, DataInvalid
from pipelines.serving.runtime import scale_features

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


def features_and_labels(
    ws: Workspace, df: pd.DataFrame
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Model inputs shaped (n, h, w, 1) and scaled to [0, 1], plus each row's class index.

    The network predicts the position of a class in ``data.label.classes``, so labels such as
    [3, 5, 7] work as well as 0..9. Validation has already rejected unknown labels.
    """
    spec = ws.model.data.features
    x = scale_features(
        df[spec.columns].to_numpy(dtype=np.float64), spec.min, spec.max, spec.image_shape
    )
    index = {c: i for i, c in enumerate(ws.model.data.label.classes)}
    y = np.array([index[int(v)] for v in df[ws.model.data.label.column]], dtype=np.int64)
    return x, y

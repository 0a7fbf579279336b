"""Each bad input from the issue is caught by validate (exit 1), with a readable reason, and
nothing downstream runs on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.config import load_model
from pipelines.errors import DataInvalid
from pipelines.stages import train

Frames = dict[str, pd.DataFrame]


def split(root: Path, name: str) -> Path:
    return root / "data" / "digits" / f"{name}.parquet"


def corrupt(root: Path, change: Callable[[Frames], None]) -> None:
    frames = {s: pd.read_parquet(split(root, s)) for s in ("train", "validation", "test")}
    change(frames)
    for name, df in frames.items():
        df.to_parquet(split(root, name), index=False)


def set_cell(frames: Frames, column: str, value: object) -> None:
    df = frames["train"]
    if df[column].dtype != object and not isinstance(value, float | int):
        df[column] = df[column].astype(object)
    df.loc[5, column] = value


def drop_class(frames: Frames) -> None:
    frames["test"] = frames["test"][frames["test"]["label"] != 3].reset_index(drop=True)


def duplicate_row(frames: Frames) -> None:
    df = frames["train"]
    row = df.iloc[[10]].copy()
    row["row_id"] = 99_999
    frames["train"] = pd.concat([df, row], ignore_index=True)


def leak_into_test(frames: Frames) -> None:
    features = [c for c in frames["train"].columns if c.startswith("pixel_")]
    frames["test"].loc[0, features] = frames["train"].loc[0, features].to_numpy()


CASES: dict[str, tuple[Callable[[Frames], None], list[str]]] = {
    "missing column": (lambda f: f.update(train=f["train"].drop(columns=["pixel_5"])),
                       ["train: expect_table_columns_to_match_ordered_list"]),
    "wrong dtype": (lambda f: f["train"].__setitem__("pixel_3", f["train"]["pixel_3"].astype(str)),
                    ["train.pixel_3: expect_column_values_to_be_of_type"]),
    "NaN pixel": (lambda f: set_cell(f, "pixel_7", np.nan),
                  ["train.pixel_7: expect_column_values_to_not_be_null"]),
    "infinite pixel": (lambda f: set_cell(f, "pixel_8", np.inf),
                       ["train.pixel_8: expect_column_values_to_be_between", "inf"]),
    "out-of-range pixel": (lambda f: set_cell(f, "pixel_9", 17.0),
                           ["train.pixel_9: expect_column_values_to_be_between", "17.0"]),
    "unknown label": (lambda f: set_cell(f, "label", 11),
                      ["train.label: expect_column_values_to_be_in_set", "[11]"]),
    "one class missing": (drop_class, ["test.label: expect_column_distinct_values_to_equal_set",
                                       "missing [3]", "test_balance.fraction", "class 3: 0.000"]),
    "duplicated rows": (duplicate_row, ["train: expect_compound_columns_to_be_unique"]),
    "same image in train and test": (
        leak_into_test, ["all_splits: expect_compound_columns_to_be_unique"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_caught(case: str, workspace: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    change, expected = CASES[case]
    corrupt(workspace, change)
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 1
    err = capsys.readouterr().err
    assert "data validation failed" in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    out = workspace / "artifacts/digits/validate"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] is False
    assert (out / "data_docs/index.html").is_file()
    assert not (out / "reference_stats.json").exists()
    # Nothing downstream runs on invalid data.
    with pytest.raises(DataInvalid, match="failed validation"):
        train.run(load_model(workspace, "digits"))


def test_leak_is_only_a_cross_split_failure(workspace: Path) -> None:
    corrupt(workspace, leak_into_test)
    from pipelines.stages import validate

    with pytest.raises(DataInvalid) as err:
        validate.run(load_model(workspace, "digits"))
    failures = [line for line in str(err.value).splitlines() if line.startswith("  - ")]
    assert len(failures) == 1
    assert "all_splits" in failures[0]


def test_empty_file_is_caught(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    split(workspace, "validation").write_bytes(b"")
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 1
    assert "is an empty file (0 bytes)" in capsys.readouterr().err


def test_table_without_rows_is_caught(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    corrupt(workspace, lambda f: f.update(validation=f["validation"].iloc[0:0]))
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 1
    assert "validation: expect_table_row_count_to_be_between" in capsys.readouterr().err


def test_missing_split_is_a_usage_error(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    split(workspace, "test").unlink()
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 2
    assert "run `mlops ingest` first" in capsys.readouterr().err


def test_valid_data_writes_reference_statistics(prepared: Path) -> None:
    out = prepared / "artifacts/digits/validate"
    stats = json.loads((out / "reference_stats.json").read_text())
    assert stats["rows"] == 1167
    assert set(stats["features"]["pixel_0"]) >= {"mean", "std", "min", "max", "50%"}
    assert sum(stats["label_distribution"].values()) == pytest.approx(1.0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] is True
    assert summary["evaluated_expectations"] > 600
    assert summary["provenance"]["data_md5"].endswith(".dir")

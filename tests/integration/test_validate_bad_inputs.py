"""Each bad input from the issue is caught by validate (exit 1), with a readable reason, and
nothing downstream runs on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.config import load_model
from pipelines.errors import DataInvalid

Frames = dict[str, pd.DataFrame]


def split(root: Path, name: str) -> Path:
    return root / "data" / "digits" / f"{name}.parquet"


def corrupt(root: Path, change: Callable[[Frames], None]) -> None:
    frames = {s: pd.read_parquet(split(root, s)) for s in ("train", "validation", "test")}
    change(frames)
    for name, df in frames.items():
        df.to_parquet(split(root, name), index=False)


def set_cell(frames: Frames, column: str, value: Any) -> None:
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


def leak_id_into_test(frames: Frames) -> None:
    """A different image under an id the training split already uses: a leak by identity."""
    # Any: pandas-stubs types a cell read more widely than a cell write accepts.
    taken: Any = frames["train"].loc[0, "row_id"]
    frames["test"].loc[0, "row_id"] = taken


def string_labels(frames: Frames) -> None:
    for df in frames.values():
        df["label"] = df["label"].astype(str)


def list_column(frames: Frames) -> None:
    """A Parquet column of lists where numbers belong (an unexpected schema)."""
    frames["train"]["pixel_2"] = [[1.0, 2.0]] * len(frames["train"])


def leak_into_test(frames: Frames) -> None:
    features = [c for c in frames["train"].columns if c.startswith("pixel_")]
    frames["test"].loc[0, features] = frames["train"].loc[0, features].to_numpy()


CASES: dict[str, tuple[Callable[[Frames], None], list[str]]] = {
    "missing column": (
        lambda f: f.update(train=f["train"].drop(columns=["pixel_5"])),
        [
            "train: expect_table_columns_to_match_ordered_list — missing column(s) ['pixel_5']",
            "train.pixel_5: expect_column_values_to_not_be_null — could not run: "
            "column(s) ['pixel_5'] missing from the data",
        ],
    ),
    "renamed column": (
        lambda f: f.update(train=f["train"].rename(columns={"pixel_5": "px_5"})),
        [
            "missing column(s) ['pixel_5']; unexpected column(s) ['px_5']",
            "train.pixel_5: expect_column_values_to_be_of_type — could not run: "
            "column(s) ['pixel_5'] missing",
        ],
    ),
    "renamed label": (
        lambda f: f.update(test=f["test"].rename(columns={"label": "target"})),
        [
            "test: expect_table_columns_to_match_ordered_list — missing column(s) "
            "['label']; unexpected column(s) ['target']",
            "test.label: expect_column_values_to_be_in_set — could not run: "
            "column(s) ['label'] missing",
        ],
    ),
    "columns out of order": (
        lambda f: f.update(train=f["train"][["row_id", "label", *f["train"].columns[1:-1]]]),
        ["train: expect_table_columns_to_match_ordered_list — columns out of order"],
    ),
    "wrong dtype": (
        lambda f: f["train"].__setitem__("pixel_3", f["train"]["pixel_3"].astype(str)),
        [
            "train.pixel_3: expect_column_values_to_be_of_type — expected dtype float64",
            "train.pixel_3: expect_column_values_to_be_between — could not run "
            "(column 'pixel_3' has dtype",
        ],
    ),
    "string labels": (
        string_labels,
        [
            "train.label: expect_column_values_to_be_of_type — expected dtype int64",
            "train.label: expect_column_values_to_be_in_set — expected values in [0, 1, 2",
        ],
    ),
    "list column": (
        list_column,
        [
            "train.pixel_2: expect_column_values_to_be_of_type — expected dtype float64",
            "column 'pixel_2' has dtype object",
        ],
    ),
    "string row ids": (
        lambda f: f["train"].__setitem__("row_id", f["train"]["row_id"].astype(str)),
        ["train.row_id: expect_column_values_to_be_of_type — expected dtype int64"],
    ),
    "NaN pixel": (
        lambda f: set_cell(f, "pixel_7", np.nan),
        ["train.pixel_7: expect_column_values_to_not_be_null"],
    ),
    "infinite pixel": (
        lambda f: set_cell(f, "pixel_8", np.inf),
        ["train.pixel_8: expect_column_values_to_be_between", "inf"],
    ),
    "out-of-range pixel": (
        lambda f: set_cell(f, "pixel_9", 17.0),
        ["train.pixel_9: expect_column_values_to_be_between", "17.0"],
    ),
    "unknown label": (
        lambda f: set_cell(f, "label", 11),
        ["train.label: expect_column_values_to_be_in_set", "[11]"],
    ),
    "one class missing": (
        drop_class,
        [
            "test.label: expect_column_distinct_values_to_contain_set",
            "missing [3]",
            "test_balance.fraction",
            "class 3: 0.000",
        ],
    ),
    "duplicated rows": (duplicate_row, ["train: expect_compound_columns_to_be_unique"]),
    "same image in train and test": (
        leak_into_test,
        [
            "all_splits: expect_compound_columns_to_be_unique — leakage: the same "
            "image appears in more than one split"
        ],
    ),
    "same example id in train and test": (
        leak_id_into_test,
        [
            "all_splits.row_id: expect_column_values_to_be_unique — leakage: "
            "the same example id (row_id) appears in more than one split"
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_caught(
    case: str,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    change, expected = CASES[case]
    corrupt(workspace, change)
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 1
    out_text, err = capsys.readouterr()
    assert "data validation failed" in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    # No library traceback, printed or logged (GX logs Data Docs rendering errors).
    assert "Traceback" not in out_text + err + caplog.text
    out = workspace / "artifacts/digits/validate"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] is False
    assert (out / "data_docs/index.html").is_file()
    assert not (out / "reference_stats.json").exists()
    # Nothing downstream runs on invalid data: a refusal, not a traceback.
    for stage in ("train", "evaluate", "gate"):
        assert main([stage]) == 1, stage
        assert "failed validation" in capsys.readouterr().err


def test_leak_is_only_a_cross_split_failure(workspace: Path) -> None:
    corrupt(workspace, leak_into_test)
    from pipelines.stages import validate

    with pytest.raises(DataInvalid) as err:
        validate.run(load_model(workspace, "digits"))
    failures = [line for line in str(err.value).splitlines() if line.startswith("  - ")]
    assert len(failures) == 1
    assert "all_splits" in failures[0]


def test_empty_file_is_caught(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    split(workspace, "validation").write_bytes(b"")
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 1
    assert "is an empty file (0 bytes)" in capsys.readouterr().err


def test_table_without_rows_is_caught(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt(workspace, lambda f: f.update(validation=f["validation"].iloc[0:0]))
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 1
    assert "validation: expect_table_row_count_to_be_between" in capsys.readouterr().err


def test_missing_split_is_a_usage_error(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
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


def test_id_leak_is_only_a_cross_split_failure(workspace: Path) -> None:
    corrupt(workspace, leak_id_into_test)
    from pipelines.stages import validate

    with pytest.raises(DataInvalid) as err:
        validate.run(load_model(workspace, "digits"))
    failures = [line for line in str(err.value).splitlines() if line.startswith("  - ")]
    assert failures == [failures[0]]
    assert failures[0].startswith("  - all_splits.row_id: expect_column_values_to_be_unique")
    assert "1 unexpected value(s)" not in failures[0]  # both copies are counted: 2


def _source_table(workspace: Path, name: str, df: pd.DataFrame) -> None:
    from tests.conftest import edit_model_yaml

    path = workspace / "raw" / name
    path.parent.mkdir(exist_ok=True)
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    edit_model_yaml(workspace, {"data.source": {"kind": "file", "path": f"raw/{name}"}})


def _digits_table(workspace: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(split(workspace, s)) for s in ("train", "validation", "test")]
    return pd.concat(frames, ignore_index=True).drop(columns=["row_id"])


@pytest.mark.parametrize(
    "variant", ["names", "names and blanks", "parquet list column", "parquet text pixels"]
)
def test_odd_sources_end_in_a_readable_refusal(
    variant: str,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CSV whose label column holds text, or a Parquet file with an unexpected schema: ingest
    stores it, validate names the column and what was expected, nothing prints a traceback."""
    df = _digits_table(workspace)
    if variant.startswith("names"):
        df["label"] = np.array(["zero", "one", "two"])[df["label"].to_numpy() % 3]
        if variant == "names and blanks":
            df.loc[::7, "label"] = None  # text mixed with missing values: unsortable for sklearn
        _source_table(workspace, "table.csv", df)
        expected = "train.label: expect_column_values_to_be_of_type — expected dtype int64"
    elif variant == "parquet list column":
        df["pixel_4"] = [[0.0, 1.0]] * len(df)
        _source_table(workspace, "table.parquet", df)
        expected = "train.pixel_4: expect_column_values_to_be_of_type — expected dtype float64"
    else:
        df["pixel_4"] = df["pixel_4"].astype(str)
        _source_table(workspace, "table.parquet", df)
        expected = "train.pixel_4: expect_column_values_to_be_of_type — expected dtype float64"
    monkeypatch.chdir(workspace)
    assert main(["ingest"]) == 0
    assert main(["validate"]) == 1
    out_text, err = capsys.readouterr()
    assert expected in err, err
    assert "Traceback" not in out_text + err + caplog.text
    assert (workspace / "artifacts/digits/validate/data_docs/index.html").is_file()
    for stage in ("train", "evaluate"):
        assert main([stage]) == 1, stage
        assert "failed validation" in capsys.readouterr().err


def test_a_failed_run_leaves_no_earlier_validation_behind(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous summary said success; a validate that errors must not leave it in place."""
    out = workspace / "artifacts/digits/validate"
    assert json.loads((out / "summary.json").read_text())["success"] is True
    split(workspace, "test").write_bytes(b"PAR1 truncated")
    monkeypatch.chdir(workspace)
    assert main(["validate"]) == 1
    assert not out.exists()
    assert main(["train"]) == 2  # no summary at all: "run `mlops validate` first"


def test_changed_data_settings_need_a_new_validation(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import edit_model_yaml

    edit_model_yaml(workspace, {"data.expectations.class_fraction_min": 0.09})
    monkeypatch.chdir(workspace)
    assert main(["train"]) == 2
    assert "`data` settings in model.yaml changed" in capsys.readouterr().err


def test_a_missing_split_after_validation_is_a_usage_error(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    split(workspace, "validation").unlink()
    monkeypatch.chdir(workspace)
    for stage in ("train", "evaluate", "gate"):
        assert main([stage]) == 2, stage
        assert "run `mlops ingest` first" in capsys.readouterr().err

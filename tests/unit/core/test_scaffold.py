"""`mlops init`'s inference: column types, ranges, vocabularies, the task, and every refusal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.scaffold import (
    MIN_ROWS,
    Feature,
    Inferred,
    Refusal,
    infer,
)


def _table(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": rng.normal(50_000, 8_000, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "active": rng.integers(0, 2, rows),
            "score": np.where(rng.random(rows) < 0.1, np.nan, rng.random(rows)),
            "price": rng.normal(100, 20, rows),
            "churned": rng.integers(0, 2, rows),
        }
    )


def _ok(out: Inferred | Refusal) -> Inferred:
    assert isinstance(out, Inferred), out
    return out


def _refused(out: Inferred | Refusal) -> str:
    assert isinstance(out, Refusal), out
    return "\n".join(out.problems)


def test_types_ranges_vocabularies_and_nulls() -> None:
    df = _table()
    out = _ok(infer(df, "price"))
    by = {f.name: f for f in out.features}
    assert by["age"].type == "int"
    lo, hi = df["age"].min(), df["age"].max()
    pad = (hi - lo) * 0.1
    assert (by["age"].min, by["age"].max) == (np.floor(lo - pad), np.ceil(hi + pad))
    assert by["income"].type == "float"
    assert by["income"].min is not None
    assert by["income"].min < df["income"].min()
    assert by["plan"] == Feature("plan", "categorical", False, values=("basic", "plus", "pro"))
    assert by["active"] == Feature("active", "int", False, min=0.0, max=1.0)
    flags = _ok(infer(df.assign(active=df["active"].astype(bool)), "price"))
    assert {f.name: f for f in flags.features}["active"].type == "bool"
    assert by["score"].nullable
    # Whole numbers with nulls reach pandas as floats: still an int feature.
    ints = _ok(infer(df.assign(age=df["age"].where(df.index % 7 > 0)), "price"))
    assert {f.name: f for f in ints.features}["age"].type == "int"
    assert {f.name: f for f in ints.features}["age"].nullable
    assert not by["income"].nullable
    assert "price" not in by


def test_task_is_inferred_and_can_be_forced() -> None:
    df = _table()
    assert _ok(infer(df, "price")).task == "regression"
    churn = _ok(infer(df, "churned"))
    assert churn.task == "classification"
    assert churn.classes == (0, 1)
    assert sum(churn.class_fractions) == pytest.approx(1.0)
    assert "2 integers" in churn.task_reason
    plan = _ok(infer(df, "plan"))
    assert plan.task == "classification"
    assert plan.classes == ("basic", "plus", "pro")
    assert _ok(infer(df, "age", "regression")).task == "regression"
    assert _ok(infer(df, "age")).task == "regression"  # 62 distinct integers: a quantity


def test_regression_records_the_target_range() -> None:
    df = _table()
    out = _ok(infer(df, "price"))
    assert out.target_min == df["price"].min()
    assert out.target_max == df["price"].max()


def test_label_not_in_the_table() -> None:
    msg = _refused(infer(_table(), "nope"))
    assert "'nope' is not a column" in msg
    assert "--label" in msg


def test_too_few_rows() -> None:
    assert f"fewer than the {MIN_ROWS}" in _refused(infer(_table(rows=20), "price"))


def test_constant_label() -> None:
    df = _table().assign(price=1.0)
    assert "is constant" in _refused(infer(df, "price"))


def test_null_labels() -> None:
    df = _table()
    df.loc[3, "price"] = np.nan
    assert "null in 1 rows" in _refused(infer(df, "price"))


def test_unusable_columns_are_each_named() -> None:
    df = _table()
    df["customer_id"] = np.arange(len(df))
    df["signup"] = pd.date_range("2024-01-01", periods=len(df)).astype(str)
    df["note"] = [f"free text number {i} about things" for i in range(len(df))]
    df["sku"] = [f"SKU-{i:05d}" for i in range(len(df))]
    df["country"] = "FR"
    df["empty"] = np.nan
    msg = _refused(infer(df, "price"))
    for name, why in [
        ("customer_id", "identifier"),
        ("signup", "dates"),
        ("note", "identifier"),  # all distinct: an identifier before free text
        ("sku", "identifier"),
        ("country", "constant"),
        ("empty", "every value is null"),
    ]:
        assert any(line.startswith(f"{name}:") and why in line for line in msg.splitlines()), name
    assert "--exclude customer_id" in msg


def test_free_text_with_repeats_is_refused_as_text() -> None:
    df = _table()
    df["comment"] = [f"comment {i % 120}" for i in range(len(df))]
    assert "comment: free text (120 distinct values" in _refused(infer(df, "price"))


def test_a_datetime_column_is_refused() -> None:
    df = _table().assign(when=pd.Timestamp("2024-01-01"))
    df["when"] = pd.date_range("2024-01-01", periods=len(df))
    assert "when: holds dates" in _refused(infer(df, "price"))


def test_excluded_columns_are_skipped_and_must_exist() -> None:
    df = _table()
    df["customer_id"] = np.arange(len(df))
    out = _ok(infer(df, "price", exclude=("customer_id",)))
    assert "customer_id" not in {f.name for f in out.features}
    assert "does not have: nope" in _refused(infer(df, "price", exclude=("nope",)))


def test_a_class_too_rare_to_split() -> None:
    df = _table()
    df.loc[:3, "churned"] = 7
    assert "7 (4 rows)" in _refused(infer(df, "churned"))


def test_a_non_numeric_regression_target() -> None:
    assert "no regression target" in _refused(infer(_table(), "plan", "regression"))


def test_a_column_name_that_cannot_be_a_feature() -> None:
    df = _table().rename(columns={"age": "age (years)"})
    assert "'age (years)': not a usable name" in _refused(infer(df, "price"))


def test_only_a_label() -> None:
    df = _table()[["price"]]
    assert "no feature column" in _refused(infer(df, "price"))


def test_the_gitlab_matrix_lists_every_model() -> None:
    from pipelines.core.scaffold import gitlab_matrix

    text = ".per_model:\n  parallel:\n    matrix:\n      - MODEL: [digits]\n\nother: 1\n"
    out = gitlab_matrix(text, ["digits", "churn", "no"])
    assert out is not None
    assert yaml.safe_load(out)[".per_model"]["parallel"]["matrix"] == [
        {"MODEL": ["churn", "digits", "no"]}
    ]
    assert out.endswith("\n\nother: 1\n")
    assert gitlab_matrix(out, ["churn", "digits", "no"]) == out
    assert gitlab_matrix("jobs: {}\n", ["digits"]) is None
    assert gitlab_matrix(text + "      - MODEL: [x]\n", ["digits"]) is None


def test_the_jenkins_matrix_lists_every_model() -> None:
    from pipelines.core.scaffold import jenkins_matrix

    axis = "        axis {\n          name 'MODEL'\n          values 'digits'\n        }\n"
    text = "    string(name: 'MODEL', defaultValue: 'digits')\n" + axis + "  other\n"
    out = jenkins_matrix(text, ["digits", "churn", "no"])
    assert out == text.replace("values 'digits'", "values 'churn', 'digits', 'no'")
    assert jenkins_matrix(out, ["churn", "digits", "no"]) == out
    # No MODEL axis (the parameter alone is not one), or two: the caller says so, not guess.
    assert jenkins_matrix("    string(name: 'MODEL', defaultValue: 'digits')\n", ["x"]) is None
    assert jenkins_matrix(text + axis, ["digits"]) is None
    # Values on a line of their own shape only: a hand-made list is left to its author.
    assert jenkins_matrix(text.replace("'digits'\n", "['digits']\n"), ["digits"]) is None


def test_the_cloudbuild_triggers_of_a_model() -> None:
    from pipelines.core.scaffold import cloudbuild_triggers

    main, pull_requests = cloudbuild_triggers("churn")
    for command, config in ((main, "cloudbuild.yaml"), (pull_requests, "cloudbuild-pr.yaml")):
        words = command.replace("\\\n", " ").split()
        assert words[:4] == ["gcloud", "builds", "triggers", "create"]
        assert f"--build-config={config}" in words
        assert (
            "--substitutions=_MODEL=churn,_REGISTRY=REGISTRY,_GITOPS_REMOTE=GITOPS_REMOTE" in words
        )
    assert "--branch-pattern='^main$'" in main
    assert "mlops-main@" in main
    assert "--pull-request-pattern='^main$'" in pull_requests
    assert "mlops-pr@" in pull_requests

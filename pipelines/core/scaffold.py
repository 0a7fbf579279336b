"""`mlops init`'s decisions: what a table's columns are, and whether a model can be built on it.

Given a table and its label column, infer each feature's type, its valid range (the observed
range widened by a stated margin) or vocabulary, and whether it may be null; infer the task; and
refuse, naming every column, what cannot be used: a date, free text, an identifier, a constant.
Pure: the caller reads the table and writes the files.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

Task = Literal["classification", "regression"]
FeatureType = Literal["float", "int", "bool", "categorical"]

# A model needs rows to split three ways and still learn; the validation suite's default too.
MIN_ROWS = 50
# A stratified split needs a few rows of every class in each of train, validation and test.
MIN_ROWS_PER_CLASS = 10
# More distinct strings than this is free text (or an identifier), not a vocabulary.
MAX_CATEGORIES = 50
# An integer label with at most this many distinct values is a class, not a quantity.
MAX_CLASSES_AUTO = 20
# The observed range is widened by this share of its width on each side: live data a little
# beyond what the table happened to hold is still valid; far beyond is refused.
RANGE_MARGIN = 0.1
# A string column counts as a date when this share of its values parse as one.
DATE_SHARE = 0.9
_ID_NAME = re.compile(r"(^|_)(id|uuid|key)$", re.IGNORECASE)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Feature:
    """One input column: its type, its valid range or vocabulary, and whether it may be null."""

    name: str
    type: FeatureType
    nullable: bool
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inferred:
    """What `mlops init` writes: the task and why, the label's classes or range, the features."""

    task: Task
    task_reason: str
    label: str
    rows: int
    features: tuple[Feature, ...]
    classes: tuple[int | str, ...] = ()
    class_fractions: tuple[float, ...] = ()
    target_min: float | None = None
    target_max: float | None = None
    margin: float = RANGE_MARGIN


@dataclass(frozen=True)
class Refusal:
    """Why no model can be scaffolded from this table, each problem with what to do."""

    problems: tuple[str, ...] = field(default_factory=tuple)


def _widen(lo: float, hi: float, margin: float, integral: bool) -> tuple[float, float]:
    pad = (hi - lo) * margin
    lo, hi = lo - pad, hi + pad
    return (float(math.floor(lo)), float(math.ceil(hi))) if integral else (lo, hi)


def _is_date(values: pd.Series) -> bool:
    parsed = pd.to_datetime(values.astype(str), errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= DATE_SHARE)


def _text_column(name: str, values: pd.Series, rows: int) -> Feature | str:
    distinct = values.nunique()
    if _is_date(values):
        return f"{name}: holds dates; derive numeric features from it (e.g. day of week) or drop it"
    if distinct == len(values) and rows > MAX_CATEGORIES:
        return f"{name}: every value is different, an identifier; drop it"
    if distinct > MAX_CATEGORIES:
        return (
            f"{name}: free text ({distinct} distinct values, more than {MAX_CATEGORIES}); "
            "bucket it into a few categories or drop it"
        )
    vocab = tuple(sorted(str(v) for v in values.unique()))
    return Feature(name, "categorical", nullable=False, values=vocab)


def _numeric_column(name: str, values: pd.Series, margin: float) -> Feature | str:
    # An int column with nulls reaches pandas as floats: whole numbers only make it an int.
    integral = pd.api.types.is_integer_dtype(values) or bool(
        pd.api.types.is_float_dtype(values) and (values == values.round()).all()
    )
    unique = values.nunique()
    if (
        integral
        and unique == len(values)
        and (values.is_monotonic_increasing or _ID_NAME.search(name))
    ):
        return f"{name}: a unique, increasing integer per row, an identifier; drop it"
    if integral and set(values.unique()) <= {0, 1}:
        # A 0/1 flag: an int in [0, 1] exactly, as the table and its clients send it (a bool
        # feature takes JSON true/false); a flag has no "a little beyond" to allow for.
        return Feature(name, "int", nullable=False, min=0.0, max=1.0)
    lo, hi = _widen(float(values.min()), float(values.max()), margin, integral)
    return Feature(name, "int" if integral else "float", nullable=False, min=lo, max=hi)


def _feature(name: str, column: pd.Series, rows: int, margin: float) -> Feature | str:
    """The feature ``column`` makes, or why it cannot be one."""
    if not NAME.match(name):
        return f"{name!r}: not a usable name (letters, digits and _, not first a digit); rename it"
    values = column.dropna()
    if values.empty:
        return f"{name}: every value is null; drop it"
    if values.nunique() == 1:
        return f"{name}: constant ({values.iloc[0]!r} in every row); drop it"
    if pd.api.types.is_datetime64_any_dtype(column):
        return f"{name}: holds dates; derive numeric features from it (e.g. day of week) or drop it"
    if pd.api.types.is_bool_dtype(column):
        made: Feature | str = Feature(name, "bool", nullable=False)
    elif pd.api.types.is_numeric_dtype(column):
        made = _numeric_column(name, values, margin)
    else:
        made = _text_column(name, values, rows)
    if isinstance(made, Feature) and column.isna().any():
        made = Feature(made.name, made.type, True, made.min, made.max, made.values)
    return made


def _task(label: pd.Series, requested: str) -> tuple[Task, str]:
    if requested in ("classification", "regression"):
        return requested, f"--task {requested}"  # type: ignore[return-value]
    distinct = label.nunique()
    if not pd.api.types.is_numeric_dtype(label) or pd.api.types.is_bool_dtype(label):
        return "classification", f"the label holds {distinct} distinct non-numeric values"
    if pd.api.types.is_integer_dtype(label) and distinct <= MAX_CLASSES_AUTO:
        return (
            "classification",
            f"the label holds {distinct} integers (<= {MAX_CLASSES_AUTO})",
        )
    return "regression", f"the label is numeric with {distinct} distinct values"


def _label_problems(df: pd.DataFrame, label: str) -> list[str]:
    if label not in df.columns:
        cols = ", ".join(map(str, df.columns[:20]))
        return [f"the label {label!r} is not a column of the table ({cols}); pass --label COLUMN"]
    problems = []
    if len(df) < MIN_ROWS:
        problems.append(
            f"the table has {len(df)} rows, fewer than the {MIN_ROWS} that a split into train, "
            "validation and test needs; collect more data"
        )
    nulls = int(df[label].isna().sum())
    if nulls:
        problems.append(
            f"the label {label!r} is null in {nulls} rows; drop those rows or fill them"
        )
    if df[label].nunique() <= 1:
        problems.append(f"the label {label!r} is constant; there is nothing to learn")
    return problems


def _classes(label: pd.Series) -> tuple[tuple[int | str, ...], tuple[float, ...], list[str]]:
    counts = label.value_counts()
    if pd.api.types.is_integer_dtype(label):
        keys: list[int | str] = sorted(int(k) for k in counts.index)
    else:
        keys = sorted(str(k) for k in counts.index)
    by_key = {
        (int(str(k)) if isinstance(keys[0], int) else str(k)): int(v) for k, v in counts.items()
    }
    small = [f"{k!r} ({by_key[k]} rows)" for k in keys if by_key[k] < MIN_ROWS_PER_CLASS]
    problems = (
        [
            f"classes with fewer than {MIN_ROWS_PER_CLASS} rows cannot be split three ways: "
            f"{', '.join(small)}; collect more rows or merge them"
        ]
        if small
        else []
    )
    total = float(len(label))
    return tuple(keys), tuple(by_key[k] / total for k in keys), problems


def infer(
    df: pd.DataFrame,
    label: str,
    task: str = "auto",
    *,
    exclude: tuple[str, ...] = (),
    margin: float = RANGE_MARGIN,
) -> Inferred | Refusal:
    """The model a table makes, or every reason it cannot make one (each column named)."""
    problems = _label_problems(df, label)
    if problems:
        return Refusal(tuple(problems))
    unknown = [c for c in exclude if c not in df.columns]
    if unknown:
        return Refusal((f"--exclude names columns the table does not have: {', '.join(unknown)}",))
    features: list[Feature] = []
    for name in df.columns:
        if name == label or name in exclude:
            continue
        made = _feature(str(name), df[name], len(df), margin)
        if isinstance(made, str):
            problems.append(made + " (or pass --exclude " + str(name) + ")")
        else:
            features.append(made)
    if not features and not problems:
        problems.append("the table has no feature column besides the label")
    kind, why = _task(df[label], task)
    out = Inferred(kind, why, label, len(df), tuple(features), margin=margin)
    if kind == "classification":
        classes, fractions, class_problems = _classes(df[label])
        problems += class_problems
        out = Inferred(
            kind, why, label, len(df), tuple(features), classes, fractions, margin=margin
        )
    elif not pd.api.types.is_numeric_dtype(df[label]):
        problems.append(
            f"the label {label!r} is not numeric: no regression target; use --task classification"
        )
    else:
        lo, hi = float(df[label].min()), float(df[label].max())
        out = Inferred(
            kind, why, label, len(df), tuple(features), target_min=lo, target_max=hi, margin=margin
        )
    return Refusal(tuple(problems)) if problems else out


# The split init writes (validation 15%, test 20%): the smallest split holds 15% of the rows.
SMALLEST_SPLIT = 0.15


def template_context(inf: Inferred, name: str, source: str, base_image: str) -> dict[str, Any]:
    """What the scaffold templates (pipelines/scaffold/) are rendered with."""
    context: dict[str, Any] = {
        "name": name,
        "source": source,
        "rows": inf.rows,
        "task": inf.task,
        "task_reason": inf.task_reason,
        "label": inf.label,
        "features": inf.features,
        "margin": inf.margin,
        # A split that shrinks to half of its size today is a truncated table, not new data.
        "min_rows": max(1, math.floor(inf.rows * SMALLEST_SPLIT / 2)),
        "base_image": base_image,
    }
    if inf.task == "classification":
        shares = inf.class_fractions
        majority = max(range(len(shares)), key=lambda i: shares[i])
        context |= {
            "classes": list(inf.classes),
            "majority_class": inf.classes[majority],
            # Floored to a whole percent: "at least as good as always answering the majority".
            "accuracy_min": math.floor(shares[majority] * 100) / 100,
            # Stratified splits keep each class's share to within a row or two; half again
            # either way catches a class that went missing or took over.
            "fraction_min": round(min(shares) / 2, 4),
            "fraction_max": round(min(0.99, max(shares) * 1.5), 4),
        }
    elif inf.target_min is not None and inf.target_max is not None:
        # The target's valid range, widened like a feature's: validate refuses a value outside.
        lo, hi = _widen(inf.target_min, inf.target_max, inf.margin, integral=False)
        context |= {"target_min": round(lo, 6), "target_max": round(hi, 6)}
    return context


def _one_line_replaced(pattern: re.Pattern[str], text: str, listed: str) -> str | None:
    """``text`` with the list of the one line ``pattern`` matches (its ``head`` kept) replaced
    by ``listed``; None when no line, or more than one, matches: a file edited by hand beyond
    what a pattern can tell, which the caller reports rather than guess."""
    found = list(pattern.finditer(text))
    if len(found) != 1:
        return None
    m = found[0]
    return text[: m.start()] + m.group("head") + listed + text[m.end() :]


_GITLAB_MATRIX = re.compile(r"^(?P<head>[ \t]*- MODEL: )\[[^\]\n]*\][ \t]*$", re.MULTILINE)


def gitlab_matrix(text: str, models: list[str]) -> str | None:
    """``.gitlab-ci.yml`` with its one ``- MODEL: [...]`` line (the ``.per_model`` matrix)
    listing ``models``; None when the file has no such line, or more than one."""
    # JSON strings: a model named `no` or `1` stays a string to YAML.
    return _one_line_replaced(
        _GITLAB_MATRIX, text, "[" + ", ".join(f'"{m}"' for m in sorted(models)) + "]"
    )


# The axis's `name 'MODEL'` line and the `values '...', ...` line right after it.
_JENKINS_MATRIX = re.compile(
    r"^(?P<head>[ \t]*name 'MODEL'[ \t]*\n[ \t]*values )'[^'\n]*'(?:, *'[^'\n]*')*[ \t]*$",
    re.MULTILINE,
)


def jenkins_matrix(text: str, models: list[str]) -> str | None:
    """The ``Jenkinsfile`` with its MODEL axis's one ``values '...'`` line listing ``models``;
    None when it has no such axis, or more than one. Model names are DNS labels: no quote to
    escape in a single-quoted Groovy string."""
    return _one_line_replaced(_JENKINS_MATRIX, text, ", ".join(f"'{m}'" for m in sorted(models)))


def cloudbuild_triggers(model: str) -> tuple[str, str]:
    """The two Cloud Build triggers of ``model`` (README, "CI: Jenkins and Cloud Build"), as
    gcloud commands. A build runs one model, set by `_MODEL`, so each model has its own pair:
    pushes to the primary branch run cloudbuild.yaml with the account that may read the
    secrets; pull requests run cloudbuild-pr.yaml with one that can read none. The upper-case
    words are the placeholders to fill in."""

    def command(name: str, event: list[str], config: str) -> str:
        return " \\\n    ".join(
            [
                f"gcloud builds triggers create github --name={name}-{model}",
                "--repo-owner=OWNER --repo-name=REPO " + event[0],
                *event[1:],
                f"--build-config={config}",
                f"--service-account=projects/PROJECT/serviceAccounts/{name}"
                "@PROJECT.iam.gserviceaccount.com",
                f"--substitutions=_MODEL={model},_REGISTRY=REGISTRY,_GITOPS_REMOTE=GITOPS_REMOTE",
            ]
        )

    pull_request = [
        "--pull-request-pattern='^main$'",
        "--comment-control=COMMENTS_ENABLED_FOR_EXTERNAL_CONTRIBUTORS_ONLY",
    ]
    return (
        command("mlops-main", ["--branch-pattern='^main$'"], "cloudbuild.yaml"),
        command("mlops-pr", pull_request, "cloudbuild-pr.yaml"),
    )

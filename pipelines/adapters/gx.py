"""Great Expectations 1.x: run expectation suites as Checkpoints and build Data Docs.

GX is imported lazily (it costs seconds), with an ephemeral context: the suites live in the
repository as code, and nothing is written anywhere but the Data Docs folder we choose.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

# The default "local_site" already exists in an ephemeral context; ours gets its own name.
SITE = "mlops"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result on one batch, with what was observed and examples of failures."""

    batch: str
    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    missing: list[Any] = field(default_factory=list)
    error: str | None = None
    expected: str | None = None
    meaning: str | None = None  # the suite's own words for what a failure means

    def describe(self) -> str:
        """The outcome as one line a person reads: where, which expectation, and why it failed."""
        where = f"{self.batch}" + (f".{self.column}" if self.column else "")
        parts = [f"{where}: {self.expectation}"]
        if self.meaning:
            parts.append(self.meaning)
        if self.error:
            parts.append(self.error)
            return " — ".join(parts)
        if self.expected:
            parts.append(self.expected)
        if self.unexpected_count:
            parts.append(f"{self.unexpected_count} unexpected value(s)")
        if self.examples:
            parts.append(f"e.g. {self.examples[:5]!r}")
        if self.missing:
            parts.append(f"missing {self.missing[:5]!r}")
        elif self.observed is not None and not self.unexpected_count:
            parts.append(f"observed {self.observed!r}")
        return " — ".join(parts)


@dataclass(frozen=True)
class CheckpointOutcome:
    """A checkpoint run: success, each expectation's outcome, statistics and the docs site."""

    success: bool
    results: list[ExpectationOutcome]
    statistics: dict[str, dict[str, Any]]
    docs_index: Path

    @property
    def failures(self) -> list[ExpectationOutcome]:
        """The expectations that failed."""
        return [r for r in self.results if not r.success]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN is not valid JSON
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _exception_messages(info: Any) -> list[str]:
    """GX reports an exception either directly ({raised_exception, exception_message}) or, when
    a metric failed to resolve, nested one level down per metric id. Both, without duplicates."""
    if not isinstance(info, Mapping):
        return []
    if "raised_exception" in info:
        return [str(info.get("exception_message"))] if info.get("raised_exception") else []
    found: list[str] = []
    for nested in info.values():
        for message in _exception_messages(nested):
            if message not in found:
                found.append(message)
    return found


def _short(values: list[Any], limit: int = 12) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return f"[{shown}{', …' if len(values) > limit else ''}]"


def _column_list_cause(expected: list[Any], found: list[Any]) -> str:
    """Name what differs between the expected and the found columns, not the whole list."""
    missing = [c for c in expected if c not in found]
    unexpected = [c for c in found if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing column(s) {_short(missing)}")
    if unexpected:
        parts.append(f"unexpected column(s) {_short(unexpected)}")
    repeated = sorted({str(c) for c in found if found.count(c) > 1})
    if repeated:
        parts.append(f"repeated column(s) {_short(repeated)}")
    if not parts:
        moved = [c for i, c in enumerate(expected) if i >= len(found) or found[i] != c]
        parts.append(
            f"columns out of order from {moved[0]!r} on (expected order: {_short(expected, 5)})"
            if moved
            else f"columns differ from {expected}"
        )
    return "; ".join(parts)


def _expected(kwargs: Mapping[str, Any]) -> str | None:
    """What the expectation asked for, in the words of the failure message."""
    if kwargs.get("type_"):
        return f"expected dtype {kwargs['type_']}"
    if kwargs.get("value_set") is not None:
        return f"expected values in {_short(list(kwargs['value_set']))}"
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None or high is not None:
        return f"expected within [{low}, {high}]"
    return None


def _cause(cfg: Any, frame: pd.DataFrame, messages: list[str]) -> str | None:
    """The real reason an expectation could not be evaluated, naming the column."""
    kwargs = cfg.kwargs
    columns = [
        *([kwargs["column"]] if kwargs.get("column") else []),
        *(kwargs.get("column_list") or []),
    ]
    absent = [c for c in columns if c not in frame.columns]
    if absent and cfg.type != "expect_table_columns_to_match_ordered_list":
        return f"could not run: column(s) {_short(absent)} missing from the data"
    if not messages:
        return None
    reason = "; ".join(m.removeprefix("Error: ") for m in messages)
    # Name the columns whose dtype is the likely cause (text or objects where numbers belong).
    odd = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    dtypes = ", ".join(f"column {c!r} has dtype {frame[c].dtype}" for c in odd[:3])
    return f"could not run ({dtypes}): {reason}" if dtypes else f"could not run: {reason}"


def run_checkpoints(
    model: str,
    batches: list[tuple[str, str, pd.DataFrame]],
    suites: dict[str, list[Any]],
    docs_dir: Path,
) -> CheckpointOutcome:
    """Validate each (batch name, suite name, dataframe) with one Checkpoint per batch."""
    import great_expectations as gx
    from great_expectations.checkpoint.actions import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # tqdm bars on every validation would drown CI logs.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name=SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas(f"{model}-data")
    gx_suites = {}
    for name, expectations in suites.items():
        # Passing the list up front: add_expectation() re-serialises the whole suite into the
        # store on every call, which is quadratic (7 s of 15 s for 600 expectations).
        gx_suites[name] = context.suites.add(
            gx.ExpectationSuite(name=f"{model}.{name}", expectations=expectations)
        )

    results: list[ExpectationOutcome] = []
    statistics: dict[str, dict[str, Any]] = {}
    for batch_name, suite_name, frame in batches:
        asset = source.add_dataframe_asset(batch_name)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"{model}-{batch_name}",
                data=asset.add_batch_definition_whole_dataframe("whole"),
                suite=gx_suites[suite_name],
            )
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{model}-{batch_name}",
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="docs", site_names=[SITE])],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        for suite_result in run.run_results.values():
            statistics[batch_name] = dict(suite_result.statistics)
            for r in suite_result.results:
                cfg = r.expectation_config
                if cfg is None:  # only absent for results GX did not produce from a suite
                    continue
                res = r.result or {}
                error = _cause(cfg, frame, _exception_messages(r.exception_info))
                if (
                    cfg.type == "expect_table_columns_to_match_ordered_list"
                    and not r.success
                    and error is None
                ):
                    error = _column_list_cause(
                        list(cfg.kwargs.get("column_list") or []), list(frame.columns)
                    )
                examples = res.get("partial_unexpected_list") or []
                index = res.get("partial_unexpected_index_list") or []
                if batch_name.endswith("balance") and index:
                    # Balance tables are indexed by class: name the class, not the row.
                    examples = [
                        f"class {i['class'] if isinstance(i, dict) else i}: {v:.3f}"
                        for i, v in zip(index, examples, strict=False)
                    ]
                results.append(
                    ExpectationOutcome(
                        batch=batch_name,
                        expectation=cfg.type,
                        column=cfg.kwargs.get("column"),
                        success=bool(r.success),
                        observed=_jsonable(res.get("observed_value")),
                        unexpected_count=res.get("unexpected_count"),
                        examples=_jsonable(list(examples)),
                        missing=_jsonable(list(res.get("partial_missing_list") or [])),
                        error=error,
                        expected=_expected(cfg.kwargs),
                        meaning=getattr(cfg, "description", None) or None,
                    )
                )
    return CheckpointOutcome(
        success=all(r.success for r in results),
        results=results,
        statistics=statistics,
        docs_index=docs_dir / "index.html",
    )


# The pandas dtypes a column of each feature type may have after CSV/Parquet: an int column
# with nulls is float64 in pandas, a bool column with nulls holds objects.
_DTYPES = {
    "float": ["float64", "float32", "int64", "int32"],
    "int": ["int64", "int32", "Int64", "float64"],
    "bool": ["bool", "boolean", "object"],
}


def target_expectations(label: Any) -> list[Any]:
    """A regression target's expectations: numeric, never null, within data.label's min and
    max. validate adds them to a regressor's "rows" suite, as it adds the feature schema's."""
    gxe: Any = importlib.import_module("great_expectations.expectations")
    col = label.column
    return [
        gxe.ExpectColumnValuesToNotBeNull(column=col),
        gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=_DTYPES["float"]),
        gxe.ExpectColumnValuesToBeBetween(column=col, min_value=label.min, max_value=label.max),
    ]


def schema_expectations(features: Any) -> list[Any]:
    """The expectations a list of named features implies, per feature: its type, its range
    (numeric) or vocabulary (categorical and bool), and no nulls unless it is nullable. The
    image shorthand implies none here: its model's suite states them (models/digits/).

    validate adds these to every model's "rows" suite, so a hand-written suite cannot forget the
    schema model.yaml declares."""
    if not isinstance(features, list):
        return []
    # Imported by name (gx's package does not re-export its expectation classes for mypy).
    gxe: Any = importlib.import_module("great_expectations.expectations")
    out: list[Any] = []
    for f in features:
        col = f.name
        if not f.nullable:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
        if f.type in _DTYPES:
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=_DTYPES[f.type]))
        if f.type in ("float", "int"):
            out.append(
                gxe.ExpectColumnValuesToBeBetween(column=col, min_value=f.min, max_value=f.max)
            )
        if f.type == "bool":
            out.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=[True, False]))
        if f.type == "categorical":
            out.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(f.values)))
    return out

"""Great Expectations 1.x: run expectation suites as Checkpoints and build Data Docs.

GX is imported lazily (it costs seconds), with an ephemeral context: the suites live in the
repository as code, and nothing is written anywhere but the Data Docs folder we choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

# The default "local_site" already exists in an ephemeral context; ours gets its own name.
SITE = "mlops"


@dataclass(frozen=True)
class ExpectationOutcome:
    batch: str
    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    missing: list[Any] = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        where = f"{self.batch}" + (f".{self.column}" if self.column else "")
        parts = [f"{where}: {self.expectation}"]
        if self.error:
            parts.append(f"raised: {self.error}")
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
    success: bool
    results: list[ExpectationOutcome]
    statistics: dict[str, dict[str, Any]]
    docs_index: Path

    @property
    def failures(self) -> list[ExpectationOutcome]:
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
    context.add_data_docs_site(site_name=SITE, site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    source = context.data_sources.add_pandas(f"{model}-data")
    gx_suites = {}
    for name, expectations in suites.items():
        # Passing the list up front: add_expectation() re-serialises the whole suite into the
        # store on every call, which is quadratic (7 s of 15 s for 600 expectations).
        gx_suites[name] = context.suites.add(
            gx.ExpectationSuite(name=f"{model}.{name}", expectations=expectations))

    results: list[ExpectationOutcome] = []
    statistics: dict[str, dict[str, Any]] = {}
    for batch_name, suite_name, frame in batches:
        asset = source.add_dataframe_asset(batch_name)
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            name=f"{model}-{batch_name}",
            data=asset.add_batch_definition_whole_dataframe("whole"),
            suite=gx_suites[suite_name],
        ))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{model}-{batch_name}",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="docs", site_names=[SITE])],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        ))
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        for suite_result in run.run_results.values():
            statistics[batch_name] = dict(suite_result.statistics)
            for r in suite_result.results:
                cfg = r.expectation_config
                if cfg is None:  # only absent for results GX did not produce from a suite
                    continue
                res = r.result or {}
                exc = r.exception_info or {}
                raised = exc.get("raised_exception") if isinstance(exc, dict) else False
                examples = res.get("partial_unexpected_list") or []
                index = res.get("partial_unexpected_index_list") or []
                if batch_name.endswith("balance") and index:
                    # Balance tables are indexed by class: name the class, not the row.
                    examples = [f"class {i['class'] if isinstance(i, dict) else i}: {v:.3f}"
                                for i, v in zip(index, examples, strict=False)]
                results.append(ExpectationOutcome(
                    batch=batch_name,
                    expectation=cfg.type,
                    column=cfg.kwargs.get("column"),
                    success=bool(r.success),
                    observed=_jsonable(res.get("observed_value")),
                    unexpected_count=res.get("unexpected_count"),
                    examples=_jsonable(list(examples)),
                    missing=_jsonable(list(res.get("partial_missing_list") or [])),
                    error=str(exc.get("exception_message")) if raised else None,
                ))
    return CheckpointOutcome(
        success=all(r.success for r in results),
        results=results,
        statistics=statistics,
        docs_index=docs_dir / "index.html",
    )

"""run: the whole ML pipeline in order, skipping what DVC says is unchanged.

ingest (always; it is cheap and idempotent) -> validate -> train -> evaluate (DVC-cached) ->
gate (always: its baseline lives outside the workspace and can change without our inputs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.adapters import dvc
from pipelines.adapters.artifacts import write_text
from pipelines.config import Workspace, load_model, model_names
from pipelines.core import dvcgraph
from pipelines.errors import MlopsError
from pipelines.stages import evaluate, gate, ingest, train, validate


@dataclass
class StageReport:
    stage: str
    status: str  # ran | skipped | failed | not run
    seconds: float = 0.0
    detail: str = ""


@dataclass
class RunResult:
    model: str
    reports: list[StageReport] = field(default_factory=list)
    error: MlopsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def sync_dvc_yaml(root: Path) -> bool:
    """Regenerate dvc.yaml from the model folders; True if it changed."""
    models = {name: load_model(root, name).model.training.architecture
              for name in model_names(root)}
    text = dvcgraph.render(models)
    path = root / "dvc.yaml"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True


def run(ws: Workspace, *, baseline: Path | None = None, force: bool = False,
        progress: Callable[[str], None] = print) -> RunResult:
    result = RunResult(ws.name)
    sync_dvc_yaml(ws.root)
    total = len(dvcgraph.ORDER) + 2
    step = 0

    def record(report: StageReport) -> None:
        result.reports.append(report)
        progress(f"[{step}/{total}] {report.stage:<9} {report.status:<8} "
                 f"{report.seconds:6.1f}s  {report.detail}".rstrip())

    def attempt(name: str, fn: Callable[[], str]) -> bool:
        start = time.monotonic()
        try:
            detail = fn()
        except MlopsError as exc:
            first_line = exc.message.splitlines()[0]
            record(StageReport(name, "failed", time.monotonic() - start, first_line))
            result.error = exc
            return False
        record(StageReport(name, "ran", time.monotonic() - start, detail))
        return True

    step = 1
    progress(f"[{step}/{total}] ingest    …")
    if not attempt("ingest", lambda: _ingest(ws)):
        return _rest_not_run(result)

    names = {s: dvcgraph.stage_name(s, ws.name) for s in dvcgraph.ORDER}
    runners: dict[str, Callable[[], str]] = {
        "validate": lambda: f"{validate.run(ws).evaluated} expectations passed",
        "train": lambda: f"val accuracy {train.run(ws).final_val_accuracy:.4f}",
        "evaluate": lambda: _evaluate(ws),
    }
    for stage in dvcgraph.ORDER:
        step += 1
        # Status is asked per stage, after the one before it ran: its outs are our deps.
        if not force and not dvc.changed_stages(ws.root, [names[stage]]):
            record(StageReport(stage, "skipped", 0.0, "unchanged since dvc.lock"))
            continue
        progress(f"[{step}/{total}] {stage:<9} …")
        if not attempt(stage, runners[stage]):
            return _rest_not_run(result)
        dvc.commit(ws.root, names[stage])

    step += 1
    attempt("gate", lambda: _gate(ws, baseline))
    return result


def _ingest(ws: Workspace) -> str:
    r = ingest.run(ws)
    rows = ", ".join(f"{k} {v}" for k, v in r.rows.items())
    return f"{'wrote' if r.changed else 'unchanged'}: {rows}"


def _evaluate(ws: Workspace) -> str:
    m = evaluate.run(ws).metrics
    return f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}"


def _gate(ws: Workspace, baseline: Path | None) -> str:
    return "blessed" if gate.run(ws, baseline).blessed else "refused"


def _rest_not_run(result: RunResult) -> RunResult:
    reported = {r.stage for r in result.reports}
    result.reports += [StageReport(stage, "not run", 0.0, "an earlier stage failed")
                       for stage in ["ingest", *dvcgraph.ORDER, "gate"] if stage not in reported]
    return result

"""run: the whole pipeline in order, skipping what DVC says is unchanged.

ingest (always; it is cheap and idempotent) -> validate -> train -> evaluate (DVC-cached) ->
gate (always: its baseline lives outside the workspace and can change without our inputs) ->
package (re-uses an image the registry already has for the same inputs) -> verify ->
release (to gitops.yaml's release_environment; a no-op when already serving) -> promote (opens
or updates the pull request for promote_environment).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.adapters import codegraph, dvc
from pipelines.adapters.artifacts import write_text
from pipelines.config import Workspace, load_gitops, load_model, model_names
from pipelines.core import dvcgraph
from pipelines.errors import MlopsError

STAGES = dvcgraph.PIPELINE


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


def stage_code(root: Path) -> dict[str, list[str]]:
    """Per DVC-cached stage, the pipelines/ files its module runs (derived from its imports)."""
    files = codegraph.module_files(root, [dvcgraph.stage_module(s) for s in dvcgraph.ORDER])
    return {stage: files[dvcgraph.stage_module(stage)] for stage in dvcgraph.ORDER}


def sync_dvc_yaml(root: Path) -> bool:
    """Regenerate dvc.yaml from the model folders; True if it changed."""
    models = {
        name: load_model(root, name).model.training.architecture for name in model_names(root)
    }
    text = dvcgraph.render(models, stage_code(root))
    path = root / "dvc.yaml"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True


def run(
    ws: Workspace,
    *,
    baseline: Path | None = None,
    force: bool = False,
    until: str = STAGES[-1],
    progress: Callable[[str], None] = print,
) -> RunResult:
    if until not in STAGES:
        raise ValueError(f"unknown stage {until!r}")
    stages = STAGES[: STAGES.index(until) + 1]
    result = RunResult(ws.name)
    sync_dvc_yaml(ws.root)
    cached = {s: dvcgraph.stage_name(s, ws.name) for s in dvcgraph.ORDER}
    # Each stage's module is imported when that stage runs: a warm run skips most of them, and
    # their imports (TensorFlow, GX, sklearn, the Docker SDK) are most of its time.
    runners: dict[str, Callable[[], str]] = {
        "ingest": lambda: _ingest(ws),
        "validate": lambda: _validate(ws),
        "train": lambda: _train(ws),
        "evaluate": lambda: _evaluate(ws),
        "gate": lambda: _gate(ws, baseline),
        "package": lambda: _package(ws, progress),
        "verify": lambda: _verify(ws, progress),
        "release": lambda: _release(ws, progress),
        "promote": lambda: _promote(ws, progress),
    }
    for step, stage in enumerate(stages, start=1):
        prefix = f"[{step}/{len(stages)}] {stage:<9}"
        # DVC status is asked per stage, after the one before it ran: its outs are our deps.
        if stage in cached and not force and not dvc.changed_stages(ws.root, [cached[stage]]):
            _record(
                result,
                progress,
                prefix,
                StageReport(stage, "skipped", 0.0, "unchanged since dvc.lock"),
            )
            continue
        progress(f"{prefix} …")
        start = time.monotonic()
        try:
            detail = runners[stage]()
        except MlopsError as exc:
            _record(
                result,
                progress,
                prefix,
                StageReport(stage, "failed", time.monotonic() - start, exc.message.splitlines()[0]),
            )
            result.error = exc
            result.reports += [
                StageReport(s, "not run", 0.0, "an earlier stage failed") for s in stages[step:]
            ]
            return result
        _record(
            result, progress, prefix, StageReport(stage, "ran", time.monotonic() - start, detail)
        )
        if stage in cached:
            dvc.commit(ws.root, cached[stage])
    return result


def _record(
    result: RunResult, progress: Callable[[str], None], prefix: str, report: StageReport
) -> None:
    result.reports.append(report)
    progress(f"{prefix} {report.status:<8} {report.seconds:6.1f}s  {report.detail}".rstrip())


def _ingest(ws: Workspace) -> str:
    from pipelines.stages import ingest

    r = ingest.run(ws)
    rows = ", ".join(f"{k} {v}" for k, v in r.rows.items())
    return f"{'wrote' if r.changed else 'unchanged'}: {rows}"


def _validate(ws: Workspace) -> str:
    from pipelines.stages import validate

    return f"{validate.run(ws).evaluated} expectations passed"


def _train(ws: Workspace) -> str:
    from pipelines.stages import train

    return f"val accuracy {train.run(ws).final_val_accuracy:.4f}"


def _evaluate(ws: Workspace) -> str:
    from pipelines.stages import evaluate

    m = evaluate.run(ws).metrics
    return f"accuracy {m.accuracy:.4f}, macro F1 {m.macro_f1:.4f}"


def _gate(ws: Workspace, baseline: Path | None) -> str:
    from pipelines.stages import gate

    return "blessed" if gate.run(ws, baseline).blessed else "refused"


def _package(ws: Workspace, progress: Callable[[str], None]) -> str:
    from pipelines.stages import package

    r = package.run(ws, progress)
    return f"{'re-used' if r.reused else 'built'} {r.image}"


def _verify(ws: Workspace, progress: Callable[[str], None]) -> str:
    from pipelines.stages import verify

    r = verify.run(ws, progress)
    return f"image verified; p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms over HTTP"


def _release(ws: Workspace, progress: Callable[[str], None]) -> str:
    from pipelines.stages import release

    return release.run(ws, load_gitops(ws.root).release_environment, progress).detail


def _promote(ws: Workspace, progress: Callable[[str], None]) -> str:
    from pipelines.stages import promote

    cfg = load_gitops(ws.root)
    r = promote.run(ws, cfg.promote_environment, cfg.release_environment, progress)
    return r.detail + (f": {r.url}" if r.url else "")

"""The stage registry and ``mlops run``.

One table names every pipeline stage, runs it and summarises its result in one line. The CLI
builds a command per stage from it, and ``mlops run`` walks it in order, so a stage is added in
one place and reads the same whichever way it is invoked.

run: ingest (always; it is cheap and idempotent) -> validate -> train -> evaluate (DVC-cached)
-> gate (always: its baseline lives outside the workspace and can change without our inputs) ->
package (re-uses an image the registry already has for the same inputs) -> verify -> release
(to gitops.yaml's release_environment; a no-op when already serving) -> promote (opens or
updates the pull request for promote_environment).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import evidence
from pipelines.adapters import dvc
from pipelines.adapters.artifacts import write_text
from pipelines.adapters.gitops import require_configured
from pipelines.config import TUNED_FILE, Workspace, load_gitops, load_model, model_names
from pipelines.core import dvcgraph
from pipelines.errors import MlopsError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    """What a stage needs beyond its workspace. The CLI fills it from flags; ``mlops run`` from
    manifests/gitops.yaml."""

    progress: Progress = print
    baseline: Path | None = None
    env: str = "staging"  # release
    to_env: str = "production"  # promote
    from_env: str = "staging"  # promote
    # tune (the manual stage): None means model.yaml's tuning.trials / tuning.timeout_s;
    # storage None means MLOPS_TUNE_STORAGE, else the SQLite file under artifacts/.
    trials: int | None = None
    timeout: float | None = None
    # train: overrides training.distribution.workers; tune: its local workers (default 1).
    workers: int | None = None
    storage: str | None = None


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: ``execute`` runs it and returns the one-line summary of its result.

    Each stage module is imported inside its ``execute``: a warm ``mlops run`` skips most
    stages, and their imports (TensorFlow, GX, sklearn, the Docker SDK) are most of its time;
    ``mlops --help`` and ``mlops render`` must not pay for them at all.
    """

    name: str
    help: str
    execute: Callable[[Workspace, Options], str]
    # The evidence whose rule table is shown after the stage ran, blessed or refused.
    rules: type[evidence.Blessing] | type[evidence.InfraBlessing] | None = None


def _ingest(ws: Workspace, _: Options) -> str:
    from pipelines.stages import ingest

    r = ingest.run(ws)
    rows = ", ".join(f"{k} {v}" for k, v in r.rows.items())
    return f"{'wrote' if r.changed else 'unchanged'}: {rows}; data.dvc md5 {r.data_md5}"


def _validate(ws: Workspace, _: Options) -> str:
    from pipelines.stages import validate

    return f"{validate.run(ws).evaluated} expectations passed"


def _tune(ws: Workspace, opts: Options) -> str:
    from pipelines.stages import tune

    workers = 1 if opts.workers is None else opts.workers
    r = tune.run(ws, opts.trials, opts.timeout, workers, opts.storage)
    # tuned.yaml is now a dependency of train: dvc.yaml lists it from now on.
    sync_dvc_yaml(ws.root)
    states = ", ".join(f"{n} {k.lower()}" for k, n in sorted(r.states.items()))
    return (
        f"study {r.study} ({states}); best trial {r.best_trial}: {r.best_value:.4f}; "
        f"wrote {r.tuned_file.relative_to(ws.root)}"
    )


def _train(ws: Workspace, opts: Options) -> str:
    from pipelines.stages import train

    t = train.run(ws, opts.workers, opts.progress)
    return (
        f"{t.summary()} after {t.epochs} epochs"
        + (f" on {t.workers} workers" if t.workers > 1 else "")
        + "; "
        f"sha256 {t.tflite_sha256[:12]}"
    )


def _evaluate(ws: Workspace, _: Options) -> str:
    from pipelines.stages import evaluate

    m = evaluate.run(ws).metrics
    return f"{m.summary()}, p99 {m.latency_ms['p99']:.3f} ms, {m.size_bytes} bytes"


def _gate(ws: Workspace, opts: Options) -> str:
    from pipelines.stages import gate

    # A refusal raises GateFailed: reaching the return means the candidate is blessed.
    gate.run(ws, opts.baseline)
    return "blessed"


def _package(ws: Workspace, opts: Options) -> str:
    from pipelines.stages import package

    r = package.run(ws, opts.progress)
    return f"{'re-used' if r.reused else 'built'} {r.image}"


def _verify(ws: Workspace, opts: Options) -> str:
    from pipelines.stages import verify

    r = verify.run(ws, opts.progress)
    return f"image verified; p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms over HTTP"


def _release(ws: Workspace, opts: Options) -> str:
    from pipelines.stages import release

    landed = release.run(ws, opts.env, opts.progress)
    return landed.detail + (f" (commit {landed.commit[:12]})" if landed.commit else "")


def _promote(ws: Workspace, opts: Options) -> str:
    from pipelines.stages import promote

    r = promote.run(ws, opts.to_env, opts.from_env, opts.progress)
    return f"{r.release_id}: {r.detail}" + (f": {r.url}" if r.url else "")


_TABLE = (
    Stage(
        "ingest",
        "Write the dataset and its deterministic split under data/, tracked by data.dvc.",
        _ingest,
    ),
    Stage(
        "validate",
        "Run the Great Expectations suite as Checkpoints; write Data Docs. Exit 1 on invalid data.",
        _validate,
    ),
    Stage(
        "tune",
        "Search the training values in model.yaml's tuning.space with Optuna (TPE by default), "
        "scored on the validation split, pruning epoch by epoch; resume the study until it "
        "holds --trials finished trials; write the best values to models/<model>/tuned.yaml, "
        "which train reads. Manual: `mlops run` does not tune.",
        _tune,
    ),
    Stage(
        "train",
        "Train the Keras model with fixed seeds; export the TFLite serving artifact.",
        _train,
    ),
    Stage("evaluate", "Score the TFLite artifact (with LiteRT) on the test split.", _evaluate),
    Stage(
        "gate",
        "Apply the gate rules and write blessing.json. Exit 1 when refused.",
        _gate,
        rules=evidence.Blessing,
    ),
    Stage(
        "package",
        "Build the serving image of the blessed model (hermetic, network off), push it and the "
        "model artifact to REGISTRY, and write the release record and SBOM. Re-uses an image "
        "the registry already has for the same inputs.",
        _package,
    ),
    Stage(
        "verify",
        "Run the pushed image by digest (non-root, read-only), query it with the test split and "
        "malformed requests, and write infra_blessing.json. Exit 1 when refused.",
        _verify,
        rules=evidence.InfraBlessing,
    ),
    Stage(
        "release",
        "Put the verified candidate into the idle color of an environment, flip its Service, "
        "and commit state and rendered YAML to the GitOps repository.",
        _release,
    ),
    Stage(
        "promote",
        "Open (or update) the pull request that promotes the release serving --from to --to, "
        "with the evidence; older open promotions to --to are closed as superseded. --merge "
        "approves it (local provider only).",
        _promote,
    ),
)
# In pipeline order. core/dvcgraph owns the order, because dvc.yaml is generated from it; a
# unit test keeps the two lists the same. MANUAL stages are commands, never part of `mlops run`.
STAGES: dict[str, Stage] = {s.name: s for s in _TABLE}
MANUAL = ("tune",)


def stage_code(root: Path) -> dict[str, list[str]]:
    """Per DVC-cached stage, the pipelines/ files its module runs (derived from its imports)."""
    # Imported here: grimp is not in the `report` extra, and `mlops report` loads this module.
    from pipelines.adapters import codegraph

    files = codegraph.module_files(root, [dvcgraph.stage_module(s) for s in dvcgraph.ORDER])
    return {stage: files[dvcgraph.stage_module(stage)] for stage in dvcgraph.ORDER}


def sync_dvc_yaml(root: Path) -> bool:
    """Regenerate dvc.yaml from the model folders; True if it changed."""
    models = {
        name: load_model(root, name).model.training.architecture for name in model_names(root)
    }
    tuned = [n for n in models if (root / "models" / n / TUNED_FILE).is_file()]
    text = dvcgraph.render(models, stage_code(root), tuned)
    path = root / "dvc.yaml"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True


@dataclass
class StageReport:
    """How one stage went: ran, skipped, failed or not run, with its time and a detail."""

    stage: str
    status: str  # ran | skipped | failed | not run
    seconds: float = 0.0
    detail: str = ""


@dataclass
class RunResult:
    """A pipeline run: each stage's report, and the error that stopped it, if any."""

    model: str
    reports: list[StageReport] = field(default_factory=list)
    error: MlopsError | None = None

    @property
    def ok(self) -> bool:
        """Whether the run finished without error."""
        return self.error is None


def run(
    ws: Workspace,
    *,
    baseline: Path | None = None,
    force: bool = False,
    until: str = dvcgraph.PIPELINE[-1],
    progress: Progress = print,
) -> RunResult:
    """Run the stages up to until, skipping those DVC finds unchanged unless forced."""
    if until not in STAGES:
        raise ValueError(f"unknown stage {until!r}")
    stages = dvcgraph.PIPELINE[: dvcgraph.PIPELINE.index(until) + 1]
    result = RunResult(ws.name)
    gitops = load_gitops(ws.root)
    if "release" in stages:  # refuse an unconfigured fork before training, not after
        require_configured(gitops, ws.root)
    sync_dvc_yaml(ws.root)
    cached = {s: dvcgraph.stage_name(s, ws.name) for s in dvcgraph.ORDER}
    opts = Options(
        progress=progress,
        baseline=baseline,
        env=gitops.release_environment,
        to_env=gitops.promote_environment,
        from_env=gitops.release_environment,
    )
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
            detail = STAGES[stage].execute(ws, opts)
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


def _record(result: RunResult, progress: Progress, prefix: str, report: StageReport) -> None:
    result.reports.append(report)
    progress(f"{prefix} {report.status:<8} {report.seconds:6.1f}s  {report.detail}".rstrip())

"""gate: decide whether the candidate may ship, and write blessing.json with the reasons.

The baseline (the model production runs, a bundle folder written by `mlops baseline export`, or
a file given on the command line) is re-scored on the current test split, so the comparison
with the candidate is paired, example by example. A bundle lets a pull request's gate compare
against production without holding any credential: the default branch exports it, and the
pull request's job downloads it (README, "Security model").
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pipelines import __version__
from pipelines.adapters.artifacts import (
    BLESSING,
    PREDICTIONS,
    TFLITE,
    invalidate,
    sha256_file,
    staged_dir,
    write_bytes,
)
from pipelines.adapters.datasets import ROW_ID, Labels, features_and_labels, read_table
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import ReleaseRecord, Workspace, load_gitops, require_environment
from pipelines.config.schema import slice_values
from pipelines.core.comparison import PairedComparison, PairedErrors, SliceResult
from pipelines.core.gating import Verdict, decide, incomparable
from pipelines.core.metrics import classification
from pipelines.core.regression import compare_errors, regression_metrics
from pipelines.core.slices import SliceSpec, cut, judge_classification, judge_regression
from pipelines.core.stats import compare_paired
from pipelines.errors import ConfigError, EvidenceError, GateFailed, InfraError
from pipelines.evidence import (
    Baseline,
    BaselineBundle,
    BaselineRelease,
    Blessing,
    Candidate,
    GateProvenance,
    Rule,
    SummaryMetrics,
    candidate_artifact,
    load,
    made,
    require_evaluation,
    require_valid_data,
    save,
)
from pipelines.serving.runtime import MODEL_FILE


@dataclass(frozen=True)
class GateResult:
    """Whether the candidate is blessed, the verdict, and the blessing file."""

    blessed: bool
    verdict: Verdict
    blessing: Path


@dataclass(frozen=True)
class _Test:
    """The test split, its model inputs and labels, and the candidate's predictions of it as
    evaluate recorded them: class indices (a classifier) or values (a regressor)."""

    table: pd.DataFrame
    x: NDArray[np.float32]
    y: Labels
    candidate: Labels


def _test(ws: Workspace) -> _Test:
    test = read_table(ws.split_path("test"), "test split")
    x, y = features_and_labels(ws, test)
    candidate = pd.read_parquet(ws.artifacts("evaluate") / PREDICTIONS)
    if not np.array_equal(candidate[ROW_ID].to_numpy(), test[ROW_ID].to_numpy()):
        raise ConfigError(
            "candidate predictions do not cover the current test split",
            hint="run `mlops evaluate` again",
        )
    if ws.model.task == "regression":
        predicted: Labels = candidate["predicted"].to_numpy(dtype=np.float64)
    else:
        index = {c: i for i, c in enumerate(ws.model.classes)}
        predicted = np.array([index[int(v)] for v in candidate["predicted"]], dtype=np.int64)
    return _Test(test, x, y, predicted)


@dataclass(frozen=True)
class _Compared:
    """The baseline's predictions of the test split, the paired comparison and its record."""

    predicted: Labels
    comparison: PairedComparison | PairedErrors
    baseline: Baseline


def _compare(ws: Workspace, t: _Test, baseline: Path, source: dict[str, str]) -> _Compared:
    regression = ws.model.task == "regression"
    outputs = 1 if regression else len(ws.model.classes)
    model = TFLiteModel.load(baseline, "baseline")
    problems = incomparable(TFLiteModel.load(candidate_artifact(ws)).io, model.io, outputs)
    if problems:
        raise ConfigError(
            f"baseline {baseline} cannot be compared with the candidate:\n"
            + "\n".join(f"  - {p}" for p in problems),
            hint=f"the baseline must be a float TFLite {ws.model.task} model of this model's "
            "inputs and outputs; pass another with --baseline FILE",
        )
    scored = model.score(t.x)
    rule = ws.model.gate.change
    origin = {"path": str(baseline), "model_sha256": sha256_file(baseline), **source}
    if regression:
        y = t.y.astype(np.float64)
        errors = compare_errors(
            y, t.candidate, scored.values, resamples=rule.bootstrap_resamples, seed=rule.seed
        )
        fit = regression_metrics(y, scored.values)
        info = Baseline(
            mae=errors.baseline_mae,
            metrics=SummaryMetrics(task="regression", **asdict(fit)),
            **origin,
        )
        return _Compared(scored.values, errors, info)
    comparison = compare_paired(
        t.y, t.candidate, scored.predictions, resamples=rule.bootstrap_resamples, seed=rule.seed
    )
    m = classification(t.y, scored.predictions, ws.model.classes)
    info = Baseline(
        accuracy=comparison.baseline_accuracy,
        metrics=SummaryMetrics(
            accuracy=m["accuracy"],
            macro_precision=m["macro_precision"],
            macro_recall=m["macro_recall"],
            macro_f1=m["macro_f1"],
            per_class_recall={c: float(v["recall"]) for c, v in m["per_class"].items()},
        ),
        **origin,
    )
    return _Compared(scored.predictions, comparison, info)


def _slices(ws: Workspace, t: _Test, baseline: Labels | None) -> list[SliceResult]:
    """Each gate.slices rule's slices, judged on the candidate's (and the baseline's)
    predictions of their own rows."""
    gate = ws.model.gate
    rule = gate.change
    out: list[SliceResult] = []
    for s in gate.slices:
        spec = SliceSpec(s.feature, tuple(slice_values(ws.model, s)), tuple(s.bins or ()))
        cuts = cut(spec, t.table[s.feature].to_numpy())
        if ws.model.task == "regression":
            out += judge_regression(
                cuts,
                t.y.astype(np.float64),
                t.candidate,
                baseline,
                min_rows=s.min_rows,
                max_mae=s.max_mae,
                max_increase=rule.max_increase,
                alpha=rule.alpha,
                resamples=rule.bootstrap_resamples,
                seed=rule.seed,
            )
        else:
            out += judge_classification(
                cuts,
                t.y,
                t.candidate,
                baseline,
                min_rows=s.min_rows,
                min_accuracy=s.min_accuracy or 0.0,
                max_drop=rule.max_drop,
                resamples=rule.bootstrap_resamples,
                seed=rule.seed,
            )
    return out


@dataclass(frozen=True)
class _Served:
    """What the baseline environment serves, as read from one GitOps commit."""

    environment: str
    gitops_commit: str  # "" when the embedded GitOps repository does not exist yet
    release: ReleaseRecord | None


def _served(ws: Workspace) -> _Served:
    from pipelines.adapters import gitops

    cfg = load_gitops(ws.root)
    # A typo here must not read as "nothing released yet", which passes a first release.
    env = require_environment(ws.root, ws.model.gate.change.baseline_environment)
    remote = gitops.resolve_remote(cfg, ws.root)
    if gitops.is_default_remote(ws.root, remote) and not gitops.is_repository(Path(remote)):
        return _Served(env, "", None)  # the embedded GitOps repository does not exist yet
    # Any other remote must exist: checkout() says so (exit 3) instead of creating it.
    with gitops.checkout(cfg, ws.root) as repo:
        slot = repo.read_state(env).models.get(ws.name)
        commit = repo.head()
    record = slot.color(slot.active) if slot and slot.active else None
    if record is not None and not record.model_artifact:
        raise ConfigError(
            f"{env}'s release {record.release_id} records no model artifact",
            hint="pass the baseline with --baseline FILE",
        )
    return _Served(env, commit, record)


def _pull(record: ReleaseRecord) -> bytes:
    from pipelines.adapters.registry import Reference, Registry

    return Registry(Reference.parse(record.model_artifact).host).pull_model(
        record.model_artifact, MODEL_FILE, record.model_sha256
    )


def production_baseline(ws: Workspace) -> tuple[Path, dict[str, str]] | None:
    """The model the baseline environment serves, fetched from the registry by digest and
    checked against its recorded sha256; None while that environment has no release."""
    served = _served(ws)
    record = served.release
    if record is None:
        return None
    path = ws.root / ".infra" / "baselines" / f"{record.model_sha256}.tflite"
    write_bytes(path, _pull(record))
    return path, {
        "environment": served.environment,
        "release_id": record.release_id,
        "model_artifact": record.model_artifact,
    }


@dataclass(frozen=True)
class ExportResult:
    """The bundle folder written by export_baseline and its record."""

    folder: Path
    record: BaselineBundle


def export_baseline(ws: Workspace, out: Path) -> ExportResult:
    """Write the baseline bundle to ``out`` (inside the repository): baseline.json and, when the
    baseline environment has a release, its model file, pulled by digest and checked. The folder
    is replaced whole, so a failed export leaves no bundle rather than half of one."""
    folder = _bundle_folder(ws.root, out)
    served = _served(ws)
    record = served.release
    data = _pull(record) if record is not None else None
    bundle = BaselineBundle(
        model=ws.name,
        environment=served.environment,
        gitops_commit=served.gitops_commit,
        exported=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        mlops_version=__version__,
        release=None
        if record is None
        else BaselineRelease(
            release_id=record.release_id,
            model_artifact=record.model_artifact,
            model_sha256=record.model_sha256,
            image=record.image,
        ),
    )
    invalidate(folder)
    with staged_dir(folder) as staged:
        if data is not None:
            write_bytes(staged / TFLITE, data)
        save(staged / BaselineBundle.FILE, bundle)
    return ExportResult(folder, bundle)


BUNDLE_JOB = "baseline"  # the default-branch job of .gitlab-ci.yml that exports the bundle


def bundle_job(model: str) -> str:
    """The name GitLab gives the model's `baseline` job: one job per model (`parallel:
    matrix` with the variable MODEL) is named `baseline: [<model>]`."""
    return f"{BUNDLE_JOB}: [{model}]"


BUNDLE_FILES = (BaselineBundle.FILE, TFLITE)


def _bundle_folder(root: Path, out: Path) -> Path:
    folder = (root / out).resolve()
    if not folder.is_relative_to(root.resolve()) or folder == root.resolve():
        raise ConfigError(
            f"{out} is not a folder inside the repository {root}",
            hint="name a new folder in the repository, e.g. baseline-bundle",
        )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{out} is a file, not a folder", hint="name a folder")
    return folder


def fetch_gitlab_bundle(root: Path, out: Path, model: str) -> str:
    """Download the bundle the default branch's `baseline` job for ``model`` exported into
    ``out``, with the merge request's CI_JOB_TOKEN (no secret); say what was fetched. Without
    one (never exported, or the artifacts expired) ``out`` is left empty: the gate then
    applies on_missing_baseline and says why."""
    from pipelines.adapters.scm import gitlab_job_artifacts
    from pipelines.config import read_settings, reveal

    folder = _bundle_folder(root, out)
    env = read_settings()
    need = {
        "CI_API_V4_URL": env.ci_api_url,
        "CI_MERGE_REQUEST_PROJECT_ID or CI_PROJECT_ID": env.ci_target_project,
        "CI_DEFAULT_BRANCH": env.ci_default_branch,
        "CI_JOB_TOKEN": reveal(env.ci_job_token),
    }
    unset = [name for name, value in need.items() if not value]
    if unset:
        raise ConfigError(
            f"fetching the baseline bundle needs {', '.join(unset)}",
            hint="run it in a GitLab CI job (GitLab sets these), or use "
            "`mlops baseline export` with the read credentials",
        )
    data = gitlab_job_artifacts(
        env.ci_api_url,
        env.ci_target_project,
        env.ci_default_branch,
        bundle_job(model),
        reveal(env.ci_job_token),
    )
    invalidate(folder)
    with staged_dir(folder) as staged:
        if data is None:
            return (
                f"no `{bundle_job(model)}` job artifacts on {env.ci_default_branch} (never "
                f"exported, or expired): {out} is left empty"
            )
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [
                    m
                    for m in archive.infolist()
                    if not m.is_dir() and PurePosixPath(m.filename).name in BUNDLE_FILES
                ]
                names = [PurePosixPath(m.filename).name for m in members]
                if len(set(names)) != len(names):
                    raise ConfigError(
                        "the baseline job's artifacts hold more than one bundle",
                        hint=f"keep one folder of {', '.join(BUNDLE_FILES)} in its artifacts",
                    )
                # Written under our own names: no path from the archive reaches the disk.
                for member, name in zip(members, names, strict=True):
                    write_bytes(staged / name, archive.read(member))
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise InfraError(
                f"the `{bundle_job(model)}` job's artifacts are not a readable zip archive: {exc}",
                hint="re-run the pipeline later; if it persists, export the bundle again",
            ) from None
    return f"fetched {', '.join(sorted(names)) or 'nothing'} into {out}"


def bundle_baseline(ws: Workspace, folder: Path) -> tuple[Path, dict[str, str]] | str:
    """The model file of the bundle in ``folder``, checked against its record, with its origin;
    or, when there is no baseline to compare with, a sentence saying why."""
    path = folder / BaselineBundle.FILE
    if not path.is_file():
        return (
            f"no baseline bundle in {folder}: the export on the default branch has not run "
            "yet, or its artifact expired or could not be downloaded"
        )
    bundle = load(path, BaselineBundle)  # another version, or a malformed record: exit 2
    wanted = ws.model.gate.change.baseline_environment
    if (bundle.model, bundle.environment) != (ws.name, wanted):
        raise EvidenceError(
            f"{path} is the baseline of model {bundle.model!r} in {bundle.environment!r}; "
            f"this gate compares {ws.name!r} with {wanted!r}",
            hint=f"export the right one: mlops baseline export --model {ws.name}",
        )
    if bundle.release is None:
        return (
            f"{bundle.environment} had no release at GitOps commit "
            f"{bundle.gitops_commit[:12] or '(none yet)'}, bundle exported {bundle.exported}"
        )
    model = folder / TFLITE
    if not model.is_file():
        raise EvidenceError(
            f"{folder} holds {BaselineBundle.FILE} but not its model file {TFLITE}",
            hint="download the whole bundle, or export it again",
        )
    if sha256_file(model) != bundle.release.model_sha256:
        raise EvidenceError(
            f"{model} does not have the sha256 {bundle.release.model_sha256[:12]}… that "
            f"{path} records (release {bundle.release.release_id}): altered or corrupted",
            hint="export the bundle again on the default branch",
        )
    return model, {
        "environment": bundle.environment,
        "release_id": bundle.release.release_id,
        "model_artifact": bundle.release.model_artifact,
        "image": bundle.release.image,
        "gitops_commit": bundle.gitops_commit,
        "exported": bundle.exported,
    }


def run(ws: Workspace, baseline: Path | None = None) -> GateResult:
    """Decide on the candidate against the thresholds and the baseline; write blessing.json."""
    final = ws.artifacts("gate")
    invalidate(final)  # an error below must not leave an earlier blessing in force
    require_valid_data(ws)
    metrics = require_evaluation(ws)
    compared: _Compared | None = None
    source: dict[str, str] = {"source": "--baseline"}
    missing = ""
    if baseline is None:
        found = production_baseline(ws)
        if found is not None:
            baseline, source = found
    elif baseline.is_dir():  # a bundle from `mlops baseline export`
        bundled = bundle_baseline(ws, baseline)
        if isinstance(bundled, str):
            baseline, missing = None, bundled
        else:
            baseline, source = bundled
    test = _test(ws)
    if baseline is not None:
        compared = _compare(ws, test, baseline, source)
    slices = _slices(ws, test, compared.predicted if compared else None)
    comparison = compared.comparison if compared else None
    verdict = decide(ws.model.gate, metrics.model_dump(), comparison, missing, slices)
    with staged_dir(final) as out:
        save(
            out / BLESSING,
            Blessing(
                model=ws.name,
                blessed=verdict.blessed,
                candidate=Candidate(
                    task=metrics.task,
                    **metrics.headline(),
                    model_sha256=metrics.model_sha256,
                    size_bytes=metrics.size_bytes,
                    latency_ms=metrics.latency_ms,
                    per_class_recall=metrics.per_class_recall(),
                ),
                baseline=compared.baseline if compared else None,
                comparison=comparison,
                slices=slices,
                rules=[Rule(**asdict(r)) for r in verdict.rules],
                provenance=made(
                    GateProvenance,
                    ws.root,
                    ws.model.section_hash("gate"),
                    data_fingerprint=metrics.data_fingerprint,
                ),
            ),
        )
    if not verdict.blessed:
        reasons = "\n".join(f"  - {r.rule}: {r.reason}" for r in verdict.failed)
        raise GateFailed(
            f"the gate refused the candidate ({len(verdict.failed)} rule(s) failed):\n{reasons}",
            hint=f"see {final / BLESSING}; nothing downstream will run",
        )
    return GateResult(True, verdict, final / BLESSING)

"""gate: decide whether the candidate may ship, and write blessing.json with the reasons.

The baseline (the model production runs, or a file given on the command line) is re-scored on
the current test split, so the comparison with the candidate is paired, example by example.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.adapters.artifacts import (
    BLESSING,
    PREDICTIONS,
    invalidate,
    sha256_file,
    staged_dir,
    write_bytes,
)
from pipelines.adapters.datasets import ROW_ID, features_and_labels, read_table
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import Workspace, load_gitops, require_environment
from pipelines.core.comparison import PairedComparison
from pipelines.core.gating import Verdict, decide, incomparable
from pipelines.core.metrics import classification
from pipelines.core.stats import compare_paired
from pipelines.errors import ConfigError, GateFailed
from pipelines.evidence import (
    Baseline,
    Blessing,
    Candidate,
    GateProvenance,
    Rule,
    SummaryMetrics,
    candidate_artifact,
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


def _compare(
    ws: Workspace, baseline: Path, source: dict[str, str]
) -> tuple[PairedComparison, Baseline]:
    test = read_table(ws.split_path("test"), "test split")
    x, y = features_and_labels(ws, test)
    candidate = pd.read_parquet(ws.artifacts("evaluate") / PREDICTIONS)
    if not np.array_equal(candidate[ROW_ID].to_numpy(), test[ROW_ID].to_numpy()):
        raise ConfigError(
            "candidate predictions do not cover the current test split",
            hint="run `mlops evaluate` again",
        )
    classes = ws.model.data.label.classes
    index = {c: i for i, c in enumerate(classes)}
    cand = np.array([index[int(v)] for v in candidate["predicted"]], dtype=np.int64)
    model = TFLiteModel.load(baseline, "baseline")
    problems = incomparable(TFLiteModel.load(candidate_artifact(ws)).io, model.io, len(classes))
    if problems:
        raise ConfigError(
            f"baseline {baseline} cannot be compared with the candidate:\n"
            + "\n".join(f"  - {p}" for p in problems),
            hint="the baseline must be a float TFLite model of this model's inputs and classes; "
            "pass another with --baseline FILE",
        )
    scored = model.score(x)
    rule = ws.model.gate.change
    comparison = compare_paired(
        y, cand, scored.predictions, resamples=rule.bootstrap_resamples, seed=rule.seed
    )
    base_metrics = classification(y, scored.predictions, classes)
    info = Baseline(
        path=str(baseline),
        model_sha256=sha256_file(baseline),
        accuracy=comparison.baseline_accuracy,
        metrics=SummaryMetrics(
            accuracy=base_metrics["accuracy"],
            macro_precision=base_metrics["macro_precision"],
            macro_recall=base_metrics["macro_recall"],
            macro_f1=base_metrics["macro_f1"],
            per_class_recall={c: float(v["recall"]) for c, v in base_metrics["per_class"].items()},
        ),
        **source,
    )
    return comparison, info


def production_baseline(ws: Workspace) -> tuple[Path, dict[str, str]] | None:
    """The model the baseline environment serves, fetched from the registry by digest and
    checked against its recorded sha256; None while that environment has no release."""
    from pipelines.adapters import gitops
    from pipelines.adapters.registry import Reference, Registry

    cfg = load_gitops(ws.root)
    # A typo here must not read as "nothing released yet", which passes a first release.
    env = require_environment(ws.root, ws.model.gate.change.baseline_environment)
    remote = gitops.resolve_remote(cfg, ws.root)
    if gitops.is_default_remote(ws.root, remote) and not gitops.is_repository(Path(remote)):
        return None  # the embedded GitOps repository does not exist yet: nothing released
    # Any other remote must exist: checkout() says so (exit 3) instead of creating it.
    with gitops.checkout(cfg, ws.root) as repo:
        slot = repo.read_state(env).models.get(ws.name)
    record = slot.color(slot.active) if slot and slot.active else None
    if record is None:
        return None
    if not record.model_artifact:
        raise ConfigError(
            f"{env}'s release {record.release_id} records no model artifact",
            hint="pass the baseline with --baseline FILE",
        )
    data = Registry(Reference.parse(record.model_artifact).host).pull_model(
        record.model_artifact, MODEL_FILE, record.model_sha256
    )
    path = ws.root / ".infra" / "baselines" / f"{record.model_sha256}.tflite"
    write_bytes(path, data)
    return path, {
        "environment": env,
        "release_id": record.release_id,
        "model_artifact": record.model_artifact,
    }


def run(ws: Workspace, baseline: Path | None = None) -> GateResult:
    """Decide on the candidate against the thresholds and the baseline; write blessing.json."""
    final = ws.artifacts("gate")
    invalidate(final)  # an error below must not leave an earlier blessing in force
    require_valid_data(ws)
    metrics = require_evaluation(ws)
    comparison: PairedComparison | None = None
    baseline_info: Baseline | None = None
    source: dict[str, str] = {"source": "--baseline"}
    if baseline is None:
        found = production_baseline(ws)
        if found is not None:
            baseline, source = found
    if baseline is not None:
        comparison, baseline_info = _compare(ws, baseline, source)
    verdict = decide(ws.model.gate, metrics.model_dump(), comparison)
    with staged_dir(final) as out:
        save(
            out / BLESSING,
            Blessing(
                model=ws.name,
                blessed=verdict.blessed,
                candidate=Candidate(
                    model_sha256=metrics.model_sha256,
                    accuracy=metrics.accuracy,
                    macro_precision=metrics.macro_precision,
                    macro_recall=metrics.macro_recall,
                    macro_f1=metrics.macro_f1,
                    size_bytes=metrics.size_bytes,
                    latency_ms=metrics.latency_ms,
                    per_class_recall=metrics.per_class_recall(),
                ),
                baseline=baseline_info,
                comparison=comparison,
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

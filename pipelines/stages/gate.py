"""gate: decide whether the candidate may ship, and write blessing.json with the reasons.

The baseline (the model production runs, or a file given on the command line) is re-scored on
the current test split, so the comparison with the candidate is paired, example by example.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.adapters.artifacts import (
    BLESSING,
    invalidate,
    provenance,
    read_json,
    sha256_file,
    staged_dir,
    write_bytes,
    write_json,
)
from pipelines.adapters.datasets import ROW_ID, features_and_labels, fingerprint, read_table
from pipelines.adapters.litert import TFLiteModel
from pipelines.config import Workspace, load_gitops, require_environment
from pipelines.core.gating import Verdict, decide, incomparable
from pipelines.core.metrics import classification
from pipelines.core.stats import PairedComparison, compare_paired
from pipelines.errors import ConfigError, GateFailed
from pipelines.serving.runtime import MODEL_FILE
from pipelines.stages.evaluate import METRICS, PREDICTIONS, candidate_artifact
from pipelines.stages.validate import require_valid_data

SUMMARY_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")


@dataclass(frozen=True)
class GateResult:
    blessed: bool
    verdict: Verdict
    blessing: Path


def _fresh_metrics(ws: Workspace) -> dict[str, Any]:
    path = ws.artifacts("evaluate") / METRICS
    if not path.is_file():
        raise ConfigError(f"no evaluation at {path}", hint="run `mlops evaluate` first")
    metrics: dict[str, Any] = read_json(path)
    artifact = candidate_artifact(ws)
    if not artifact.is_file() or metrics.get("model_sha256") != sha256_file(artifact):
        raise ConfigError(
            "the evaluation does not match the trained model", hint="run `mlops evaluate` again"
        )
    if metrics.get("data_fingerprint") != fingerprint(ws):
        raise ConfigError("the data changed since the evaluation", hint="re-run the pipeline")
    return metrics


def _compare(ws: Workspace, baseline: Path) -> tuple[PairedComparison, dict[str, Any]]:
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
    info = {
        "path": str(baseline),
        "model_sha256": sha256_file(baseline),
        "accuracy": comparison.baseline_accuracy,
        "metrics": {
            **{m: base_metrics[m] for m in SUMMARY_METRICS},
            "per_class_recall": _recalls(base_metrics),
        },
    }
    return comparison, info


def _recalls(metrics: dict[str, Any]) -> dict[str, float]:
    return {c: float(v["recall"]) for c, v in metrics["per_class"].items()}


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
    final = ws.artifacts("gate")
    invalidate(final)  # an error below must not leave an earlier blessing in force
    require_valid_data(ws)
    metrics = _fresh_metrics(ws)
    comparison: PairedComparison | None = None
    baseline_info: dict[str, Any] | None = None
    source: dict[str, str] = {"source": "--baseline"}
    if baseline is None:
        found = production_baseline(ws)
        if found is not None:
            baseline, source = found
    if baseline is not None:
        comparison, baseline_info = _compare(ws, baseline)
        baseline_info.update(source)
    verdict = decide(ws.model.gate, metrics, comparison)
    with staged_dir(final) as out:
        write_json(
            out / BLESSING,
            {
                "model": ws.name,
                "blessed": verdict.blessed,
                "candidate": {
                    **{
                        k: metrics[k]
                        for k in ("model_sha256", *SUMMARY_METRICS, "size_bytes", "latency_ms")
                    },
                    "per_class_recall": _recalls(metrics),
                },
                "baseline": baseline_info,
                "comparison": asdict(comparison) if comparison else None,
                "rules": verdict.to_dict()["rules"],
                "provenance": provenance(
                    ws.root,
                    ws.model.section_hash("gate"),
                    data_fingerprint=metrics["data_fingerprint"],
                ),
            },
        )
    if not verdict.blessed:
        reasons = "\n".join(f"  - {r.rule}: {r.reason}" for r in verdict.failed)
        raise GateFailed(
            f"the gate refused the candidate ({len(verdict.failed)} rule(s) failed):\n{reasons}",
            hint=f"see {final / BLESSING}; nothing downstream will run",
        )
    return GateResult(True, verdict, final / BLESSING)


def require_blessing(ws: Workspace) -> dict[str, Any]:
    """Downstream guard: a blessing for exactly the current candidate artifact, data (which
    must still pass validation) and gate rules."""
    require_valid_data(ws)
    path = ws.artifacts("gate") / BLESSING
    if not path.is_file():
        raise GateFailed(f"no blessing at {path}", hint="run `mlops gate` first")
    blessing: dict[str, Any] = read_json(path)
    if not blessing.get("blessed"):
        raise GateFailed(
            f"the candidate was not blessed ({path})",
            hint="read its reasons; a failed gate blocks every later stage",
        )
    artifact = candidate_artifact(ws)
    candidate = blessing.get("candidate") or {}
    if not artifact.is_file() or candidate.get("model_sha256") != sha256_file(artifact):
        raise GateFailed(
            "the blessing is for a different model artifact than the current one",
            hint="run the gate again on the current candidate",
        )
    prov = blessing.get("provenance") or {}
    if prov.get("data_fingerprint") != fingerprint(ws):
        raise GateFailed(
            "the blessing is for other data than the current dataset",
            hint="run the pipeline again on the current data",
        )
    if prov.get("params_sha256") != ws.model.section_hash("gate"):
        raise GateFailed(
            "the gate rules in model.yaml changed since the blessing", hint="run `mlops gate` again"
        )
    return blessing

"""Typed evidence: the records one stage hands on to the next.

Every record is a frozen pydantic model with a schema ``version``. ``save`` writes one
atomically; ``load`` reads one back or refuses it (missing, truncated, another version, unknown
or missing fields); ``require`` also refuses a record that is not for the exact artifact, data
and settings on disk, or whose verdict is no. The JSON field names are the ones reviewers, CI
and the report have always read.

This module imports nothing heavier than pydantic and PyYAML: `mlops report` reads these
records in a CI job that installs only the `report` extra (no numpy, pandas or TensorFlow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.adapters.artifacts import (
    BLESSING,
    INFRA_BLESSING,
    METRICS,
    PROFILE,
    PROVENANCE,
    REFERENCE_STATS,
    RELEASE,
    SUMMARY,
    TFLITE,
    TUNING,
    fingerprint,
    provenance,
    sha256_file,
    write_json,
)
from pipelines.config import Workspace
from pipelines.core.comparison import PairedComparison, PairedErrors, SliceResult
from pipelines.errors import CheckFailed, DataInvalid, EvidenceError, GateFailed

# Bumped when a record's meaning changes; a record of any other version is refused, so a
# stage never trusts what an older (or newer) mlops wrote.
SCHEMA_VERSION = 1
# The model.yaml sections a training depends on (its provenance hashes them).
TRAIN_PARAMS = ("data", "training", "export")


class Frozen(BaseModel):
    """A record's base: immutable, and unknown keys are an error, not silently kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Rule(Frozen):
    """One gate rule's outcome, as blessing.json records it."""

    rule: str
    passed: bool
    reason: str


class Provenance(Frozen):
    """Who made a record from what (adapters/artifacts.provenance)."""

    git_commit: str
    git_dirty: bool
    data_md5: str
    params_sha256: str
    created: str
    mlops_version: str


class GateProvenance(Provenance):
    """Provenance that also names the data the gate decided on."""

    data_fingerprint: str


class ModelProvenance(Provenance):
    """Provenance that also names the model artifact by hash."""

    model_sha256: str


P = TypeVar("P", bound=Provenance)


def made(kind: type[P], root: Path, params_hash: str, **extra: Any) -> P:
    """A provenance record of ``kind`` for the workspace at ``root``."""
    return kind.model_validate(provenance(root, params_hash, **extra))


class Record(Frozen):
    """A file one stage writes for later stages. Subclasses name the stage and the file."""

    STAGE: ClassVar[str]
    FILE: ClassVar[str]
    TITLE: ClassVar[str]
    # binding -> message when the record's value differs from the current one; the message may
    # use {path}, {recorded} and {current}.
    STALE: ClassVar[dict[str, str]] = {}

    version: int = SCHEMA_VERSION

    def binding(self) -> dict[str, object]:
        """What on disk this record is for (see STALE)."""
        return {}

    def refusal(self, path: Path) -> CheckFailed | None:
        """Why a current record still forbids going on (its check said no), if it does."""
        return None


class ValidationSummary(Record):
    """validate's summary.json: the verdict on the data, with the failures."""

    STAGE, FILE, TITLE = "validate", SUMMARY, "validation summary"
    STALE = {
        "data_fingerprint": "the data changed since it was validated",
        "data_settings": "the `data` settings in model.yaml changed since the data was validated",
    }

    model: str
    success: bool
    evaluated_expectations: int
    failed_expectations: int
    failures: list[str]
    rows: dict[str, int]
    data_docs: str
    data_fingerprint: str
    provenance: Provenance

    def binding(self) -> dict[str, object]:
        """The data and its `data` settings that were validated."""
        return {
            "data_fingerprint": self.data_fingerprint,
            "data_settings": self.provenance.params_sha256,
        }

    def refusal(self, path: Path) -> CheckFailed | None:
        """Failed validation stops every later stage."""
        if self.success:
            return None
        return DataInvalid(
            f"the data failed validation ({path}); refusing to go on",
            hint="fix the data and re-run `mlops validate`",
        )


class ReferenceStats(Record):
    """The training split's profile, for later skew and drift checks."""

    STAGE, FILE, TITLE = "validate", REFERENCE_STATS, "reference statistics"

    rows: int
    features: dict[str, dict[str, float]]
    label_distribution: dict[str, float]


class TrainingRecord(Record, Provenance):
    """train's provenance.json: the exported model and what it was trained on."""

    STAGE, FILE, TITLE = "train", PROVENANCE, "training record"
    STALE = {
        "model_sha256": f"{{path.parent}}/{TFLITE} is not the model train recorded in {{path}}",
        "data_fingerprint": "the model was trained on other data than the current dataset",
        "classes": "the model was trained for the classes {recorded}, model.yaml now lists "
        "{current}",
    }

    model_sha256: str
    tensorflow: str
    quantization: str
    classes: list[int]
    data_fingerprint: str
    # The study whose best values (models/<name>/tuned.yaml) the training used, if any.
    tuned_study: str | None = None
    # Processes that trained it together (1: one process, byte-reproducible) and the Keras
    # that fitted it (tf_keras under MultiWorkerMirroredStrategy).
    workers: int = 1
    keras: str = ""

    def binding(self) -> dict[str, object]:
        """The model artifact, the data it was trained on, and its classes."""
        return {
            "model_sha256": self.model_sha256,
            "data_fingerprint": self.data_fingerprint,
            "classes": self.classes,
        }


class TrialRow(Frozen):
    """One trial of a study, as the tuning record lists it."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    value: float | None
    params: dict[str, Any]
    epochs_run: int  # epochs reported before it finished or was pruned


class TuningRecord(Record):
    """tune's tuning.json: the study, its trials, the best one and the parameter importances.
    The values themselves go to models/<name>/tuned.yaml, which train reads."""

    STAGE, FILE, TITLE = "tune", TUNING, "tuning record"

    model: str
    study: str
    storage: str  # the password masked
    sampler: str
    pruner: str
    metric: str
    direction: str
    target_trials: int
    states: dict[str, int]
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    importances: dict[str, float]  # fANOVA; empty when too few trials completed
    importance_note: str
    history: list[TrialRow]
    tuned_file: str
    space_sha256: str
    provenance: Provenance


class AnomalyModel(Frozen):
    """A multivariate Gaussian on the training features (Ledoit-Wolf shrinkage) and the
    threshold on its Mahalanobis distance, chosen on the validation split."""

    center: list[float]
    precision: list[list[float]]
    shrinkage: float
    threshold: float
    false_alarm_rate: float
    validation_rate: float


class DriftCalibration(Frozen):
    """Drift thresholds at the (1 - false_alarm_rate) quantile of bootstrap windows of the
    validation split; a live statistic above one alarms."""

    window_instances: int
    false_alarm_rate: float
    windows: int
    seed: int
    feature_effect: float
    drifted_fraction: float
    prediction_psi: float
    psi_floor: float


def _absent(value: object) -> bool:
    return value is None


# An optional field that is left out of the JSON when absent, not written as null.
OptionalFloat = Annotated[float | None, Field(exclude_if=_absent)]
OptionalStr = Annotated[str | None, Field(exclude_if=_absent)]


def _empty(value: object) -> bool:
    return not value


class ProfileSummary(Frozen):
    """What a release record says about the profile its image ships."""

    sha256: str
    window_instances: int
    false_alarm_rate: float
    feature_effect: float
    drifted_fraction: float
    prediction_psi: float
    anomaly_threshold: float
    anomaly_false_alarm_rate: float


class Profile(Record):
    """train's profile.json: what production inputs and predictions should look like. The
    training split gives the per-feature statistics, the predicted-class shares and the
    Gaussian; the validation split calibrates the thresholds. Shipped in the image beside the
    model; the server reads the same JSON (serving/reference.py)."""

    STAGE, FILE, TITLE = "train", PROFILE, "reference profile"
    STALE = {"model_sha256": f"{{path}} is not the profile of {{path.parent}}/{TFLITE}"}

    model: str
    model_sha256: str
    rows: int
    validation_rows: int
    features: list[str]
    mean: list[float]
    stddev: list[float]
    stddev_floor: float
    bins: list[list[float]]
    # A classifier's classes; a regressor's bins of the predicted value (0..len(edges)).
    classes: list[int]
    class_ratio: list[float]
    # A regressor's inner edges of those bins (core/profile.prediction_edges); left out of a
    # classifier's profile, so its bytes (and its image's digest) stay as they were.
    prediction_edges: list[float] = Field(default_factory=list, exclude_if=_empty)
    anomaly: AnomalyModel
    drift: DriftCalibration
    provenance: ModelProvenance

    def binding(self) -> dict[str, object]:
        """What the profile is for: the model it was computed with."""
        return {"model_sha256": self.model_sha256}

    def summary(self, sha256: str) -> ProfileSummary:
        """The profile in a few numbers, for the release record."""
        return ProfileSummary(
            sha256=sha256,
            window_instances=self.drift.window_instances,
            false_alarm_rate=self.drift.false_alarm_rate,
            feature_effect=self.drift.feature_effect,
            drifted_fraction=self.drift.drifted_fraction,
            prediction_psi=self.drift.prediction_psi,
            anomaly_threshold=self.anomaly.threshold,
            anomaly_false_alarm_rate=self.anomaly.false_alarm_rate,
        )


class ClassMetrics(Frozen):
    """One class's test metrics."""

    precision: float
    recall: float
    f1: float
    support: int


# Each task's headline metrics: a metrics record holds its own task's, and none of the other's.
TASK_METRICS = {
    "classification": ("accuracy", "macro_precision", "macro_recall", "macro_f1"),
    "regression": ("rmse", "mae", "r2"),
}


class TaskMetrics(Frozen):
    """The headline test metrics of one task: accuracy and macro precision/recall/F1 for a
    classifier, RMSE, MAE and R² for a regressor. The other task's are absent (None)."""

    task: Literal["classification", "regression"] = "classification"
    accuracy: OptionalFloat = None
    macro_precision: OptionalFloat = None
    macro_recall: OptionalFloat = None
    macro_f1: OptionalFloat = None
    rmse: OptionalFloat = None
    mae: OptionalFloat = None
    r2: OptionalFloat = None

    @model_validator(mode="after")
    def _the_task_s_own(self) -> TaskMetrics:
        missing = [k for k in TASK_METRICS[self.task] if getattr(self, k) is None]
        other = "regression" if self.task == "classification" else "classification"
        foreign = [k for k in TASK_METRICS[other] if getattr(self, k) is not None]
        if missing or foreign:
            raise ValueError(
                f"{self.task} metrics: "
                + "; ".join(
                    [f"missing {', '.join(missing)}"] * bool(missing)
                    + [f"{', '.join(foreign)} belong to {other}"] * bool(foreign)
                )
            )
        return self

    def headline(self) -> dict[str, float]:
        """The task's headline metrics by name."""
        return {k: float(getattr(self, k)) for k in TASK_METRICS[self.task]}

    def summary(self) -> str:
        """The headline metrics in one line: "accuracy 0.9712, macro F1 0.9705" or
        "RMSE 54.1, MAE 43.2, R² 0.4512"."""
        if self.task == "regression":
            return f"RMSE {self.rmse:.4g}, MAE {self.mae:.4g}, R² {self.r2:.4f}"
        return f"accuracy {self.accuracy:.4f}, macro F1 {self.macro_f1:.4f}"


class Metrics(Record, TaskMetrics):
    """evaluate's metrics.json: the serving artifact scored on the test split. A classifier's
    adds per-class metrics and the confusion matrix; both are empty for a regressor."""

    STAGE, FILE, TITLE = "evaluate", METRICS, "evaluation"
    STALE = {
        "model_sha256": "the evaluation does not match the trained model",
        "data_fingerprint": "the data changed since the evaluation",
    }

    n: int
    per_class: dict[str, ClassMetrics] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    model: str
    model_sha256: str
    data_fingerprint: str
    size_bytes: int
    latency_ms: dict[str, float]
    trained: TrainingRecord
    provenance: Provenance

    def binding(self) -> dict[str, object]:
        """The model artifact and data that were scored."""
        return {"model_sha256": self.model_sha256, "data_fingerprint": self.data_fingerprint}

    def per_class_recall(self) -> dict[str, float]:
        """Each class's recall, by class."""
        return {c: m.recall for c, m in self.per_class.items()}


class SummaryMetrics(TaskMetrics):
    """The headline test metrics of a model, as the gate compares them."""

    per_class_recall: dict[str, float] = Field(default_factory=dict, exclude_if=_empty)


class Candidate(SummaryMetrics):
    """The candidate's metrics, with its artifact's hash, size and latency."""

    model_sha256: str
    size_bytes: int
    latency_ms: dict[str, float]


class Baseline(Frozen):
    """The model the candidate was compared with: a file given on the command line
    (``source``), or what an environment serves (``environment``, ``release_id``, ...)."""

    path: str
    model_sha256: str
    # The headline metric: accuracy (classification) or MAE (regression), on the same test set.
    accuracy: OptionalFloat = None
    mae: OptionalFloat = None
    metrics: SummaryMetrics
    # Only the keys of the baseline's origin are written, as before the records were typed.
    source: OptionalStr = None
    environment: OptionalStr = None
    release_id: OptionalStr = None
    model_artifact: OptionalStr = None
    # Set when the baseline came from a bundle (`mlops baseline export`): the serving image,
    # the GitOps commit the export read, and when it ran (how stale the comparison may be).
    image: OptionalStr = None
    gitops_commit: OptionalStr = None
    exported: OptionalStr = None


class BaselineRelease(Frozen):
    """The release a bundle's model file belongs to."""

    release_id: str
    model_artifact: str
    model_sha256: str
    image: str


class BaselineBundle(Record):
    """baseline.json in a bundle folder (`mlops baseline export`): where the model file beside
    it came from. ``release`` is None when the environment had no release at that commit."""

    STAGE, FILE, TITLE = "baseline export", "baseline.json", "baseline bundle record"

    model: str
    environment: str
    gitops_commit: str
    exported: str
    mlops_version: str
    release: BaselineRelease | None


class Blessing(Record):
    """gate's blessing.json: the verdict on the candidate, with its reasons."""

    STAGE, FILE, TITLE = "gate", BLESSING, "blessing"
    STALE = {
        "model_sha256": "the blessing is for a different model artifact than the current one",
        "data_fingerprint": "the blessing is for other data than the current dataset",
        "gate_settings": "the gate rules in model.yaml changed since the blessing",
    }

    model: str
    blessed: bool
    candidate: Candidate
    baseline: Baseline | None
    # The core dataclasses themselves: pydantic validates and writes them field by field, as it
    # did the record that mirrored them (same keys, same order, unknown keys refused).
    # A classifier's comparison is a PairedComparison, a regressor's PairedErrors.
    comparison: PairedComparison | PairedErrors | None
    slices: list[SliceResult] = Field(default_factory=list)
    rules: list[Rule]
    provenance: GateProvenance

    def binding(self) -> dict[str, object]:
        """The candidate, the data and the gate settings the verdict was reached on."""
        return {
            "model_sha256": self.candidate.model_sha256,
            "data_fingerprint": self.provenance.data_fingerprint,
            "gate_settings": self.provenance.params_sha256,
        }

    def refusal(self, path: Path) -> CheckFailed | None:
        """An unblessed candidate stops every later stage."""
        if self.blessed:
            return None
        return GateFailed(
            f"the candidate was not blessed ({path})",
            hint="read its reasons; a failed gate blocks every later stage",
        )


class PackagedRelease(Record):
    """package's release.json: the image built for the blessed model, by digest."""

    STAGE, FILE, TITLE = "package", RELEASE, "release record"
    STALE = {"model_sha256": "the packaged image holds a different model than the blessed one"}

    model: str
    release_id: str
    image: str
    image_tag: str
    model_artifact: str
    model_sha256: str
    data_md5: str
    source_commit: str
    base_image: str
    platform: str
    build_key: str
    reused: bool
    size_bytes: int | None
    compressed_size_bytes: int
    packages: int
    seconds: float
    sbom: str
    sbom_sha256: str
    provenance: ModelProvenance
    # None only in records written before the image shipped a profile.
    profile: ProfileSummary | None = None

    def binding(self) -> dict[str, object]:
        """The model artifact the image was built with."""
        return {"model_sha256": self.model_sha256}


class MalformedRequest(Frozen):
    """A malformed request the image answered with the wrong status."""

    case: str
    expected: int
    got: int


class InfraBlessing(Record):
    """verify's infra_blessing.json: how the pushed image behaved when run by digest."""

    STAGE, FILE, TITLE = "verify", INFRA_BLESSING, "infra blessing"
    STALE = {
        "image": "the infra blessing is for a different image than the release record",
        "model_sha256": "the infra blessing is for a different image than the release record",
    }

    model: str
    blessed: bool
    release_id: str
    image: str
    model_sha256: str
    latency_ms: dict[str, float]
    examples: int
    malformed_requests: list[MalformedRequest]
    rules: list[Rule]
    provenance: Provenance

    def binding(self) -> dict[str, object]:
        """The image and model artifact that were verified."""
        return {"image": self.image, "model_sha256": self.model_sha256}

    def refusal(self, path: Path) -> CheckFailed | None:
        """A failed verification stops the release."""
        if self.blessed:
            return None
        return CheckFailed(
            f"the image failed verification ({path})",
            hint="read its reasons; a failed verification blocks the release",
        )


R = TypeVar("R", bound=Record)


def _rerun(kind: type[Record]) -> str:
    return f"re-run `mlops {kind.STAGE}`, which writes it (`mlops run` re-runs what changed)"


def save(path: Path, record: Record) -> None:
    """Write ``record`` atomically (a reader sees the old file or the new one)."""
    write_json(path, record.model_dump(mode="json"))


def load(path: Path, kind: type[R]) -> R:
    """The record at ``path``; EvidenceError if it is missing or is not a current ``kind``."""
    if not path.is_file():
        raise EvidenceError(f"no {kind.TITLE} at {path}", hint=f"run `mlops {kind.STAGE}` first")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvidenceError(
            f"{path} is not valid JSON (truncated or edited by hand?): {exc}", hint=_rerun(kind)
        ) from exc
    version = raw.get("version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise EvidenceError(
            f"{path} is a {kind.TITLE} of schema version {version}, this mlops reads version "
            f"{SCHEMA_VERSION} (written by another mlops?)",
            hint=_rerun(kind),
        )
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: "
            + ("unknown field" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()[:5]
        )
        raise EvidenceError(
            f"{path} is not a valid {kind.TITLE}: {problems}", hint=_rerun(kind)
        ) from None


def require(path: Path, kind: type[R], **current: object) -> R:
    """The record at ``path``, refused unless its bindings equal ``current`` (the artifact, data
    and settings on disk now) and its verdict is yes. Refusals are EvidenceError (exit 2), but
    a current record whose check said no keeps that check's error (exit 1)."""
    record = load(path, kind)
    refusal = record.refusal(path)
    if refusal is not None:
        raise refusal
    recorded = record.binding()
    for key, value in current.items():
        if recorded[key] != value:
            message = kind.STALE[key].format(path=path, recorded=recorded[key], current=value)
            raise EvidenceError(message, hint=_rerun(kind))
    return record


# Where each record lives, and the guards every stage runs before it trusts its inputs.


def at(ws: Workspace, kind: type[Record]) -> Path:
    """Where a kind of record lives in a workspace."""
    return ws.artifacts(kind.STAGE) / kind.FILE


def candidate_artifact(ws: Workspace) -> Path:
    """The model train exported: what evaluate scores, gate blesses and package ships."""
    return ws.artifacts("train") / TFLITE


def _candidate_sha256(ws: Workspace) -> str | None:
    artifact = candidate_artifact(ws)
    return sha256_file(artifact) if artifact.is_file() else None


def require_valid_data(ws: Workspace) -> ValidationSummary:
    """The current data, under the current `data` settings, passed validation."""
    return require(
        at(ws, ValidationSummary),
        ValidationSummary,
        data_fingerprint=fingerprint(ws),
        data_settings=ws.model.section_hash("data"),
    )


def require_trained(ws: Workspace) -> TrainingRecord:
    """Train's record of exactly the model on disk, trained on the current data and classes."""
    artifact = candidate_artifact(ws)
    if not artifact.is_file():
        raise EvidenceError(f"no trained model at {artifact}", hint="run `mlops train` first")
    return require(
        at(ws, TrainingRecord),
        TrainingRecord,
        model_sha256=sha256_file(artifact),
        data_fingerprint=fingerprint(ws),
        classes=ws.model.classes,
    )


def require_profile(ws: Workspace, model_sha256: str) -> Profile:
    """Train's reference profile of exactly the model ``model_sha256``."""
    return require(at(ws, Profile), Profile, model_sha256=model_sha256)


def require_evaluation(ws: Workspace) -> Metrics:
    """Evaluate's metrics of exactly the model on disk, on the current data."""
    return require(
        at(ws, Metrics),
        Metrics,
        model_sha256=_candidate_sha256(ws),
        data_fingerprint=fingerprint(ws),
    )


def require_blessing(ws: Workspace) -> Blessing:
    """A blessing for exactly the current candidate, data (which must still pass validation)
    and gate rules."""
    require_valid_data(ws)
    return require(
        at(ws, Blessing),
        Blessing,
        model_sha256=_candidate_sha256(ws),
        data_fingerprint=fingerprint(ws),
        gate_settings=ws.model.section_hash("gate"),
    )


def require_package(ws: Workspace) -> PackagedRelease:
    """A release record for exactly the blessed model on disk."""
    blessing = require_blessing(ws)
    return require(
        at(ws, PackagedRelease), PackagedRelease, model_sha256=blessing.candidate.model_sha256
    )


def require_infra_blessing(ws: Workspace) -> InfraBlessing:
    """The image in the release record passed verification."""
    record = require_package(ws)
    return require(
        at(ws, InfraBlessing),
        InfraBlessing,
        image=record.image,
        model_sha256=record.model_sha256,
    )

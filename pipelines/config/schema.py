"""The configuration's types and their validation: pure, no file and no environment access.

``models/<name>/model.yaml``, ``manifests/gitops.yaml`` and ``manifests/environments/<env>.yaml``
are parsed (by loading.py) into these frozen pydantic models, which forbid unknown keys, so a
typo fails loudly with the file, the key and what is allowed, instead of silently using a
default. core/ imports this module only: it decides, it reads nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipelines.errors import ConfigError
from pipelines.serving import contract

if TYPE_CHECKING:  # numpy, which features.py needs, is not installed in every job (the report's)
    from pipelines.serving import features as serving_features

MODELS_DIR = "models"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DEFAULT_MODEL = "digits"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Section(_Strict):
    """A section of model.yaml. Strict types: pydantic's lax mode would read `epochs: true` as
    1, `accuracy: "0.9"` as 0.9 and `max_drop: .inf` as a number; each is a typo to refuse."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")

# What a fork must decide, stated in model.yaml (DESIGN.md rule 8): each is refused when missing,
# all of them in one message (loading.missing_keys), before pydantic's own messages.
REQUIRED_KEYS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("task",), "what the model predicts: classification or regression"),
    (
        ("data", "source"),
        "where the data comes from: {kind: file, path: ...}, sklearn_digits or sklearn_diabetes",
    ),
    (("data", "label", "column"), "the column holding the label"),
    (("data", "features"), "the feature schema: named features, or the image shorthand"),
    (("deploy", "image_repository"), "the registry repository of the serving image"),
)
# ... and what one task needs that the other does not have (loading.missing_keys).
REQUIRED_BY_TASK: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "classification": ((("data", "label", "classes"), "the classes the label may hold"),),
    "regression": (
        (("data", "label", "min"), "the smallest valid target value"),
        (("data", "label", "max"), "the largest valid target value"),
    ),
}


class SklearnSource(_Section):
    """A dataset bundled with scikit-learn, which needs no download: digits (1,797 8x8 images,
    ten classes) or diabetes (442 patients, 10 numeric features, disease progression after a
    year as the regression target; the unscaled values, in their own units)."""

    kind: Literal["sklearn_digits", "sklearn_diabetes"] = "sklearn_digits"


# Folders that DVC-tracked outputs already own: data/ (data.dvc, what ingest writes) and
# artifacts/ (the stages' outputs). A DVC-tracked source inside one would overlap them.
DVC_OWNED = ("data", "artifacts")


class FileSource(_Section):
    """Data from a CSV or Parquet file in the repository, or kept in a DVC remote."""

    kind: Literal["file"]
    path: str = Field(description="CSV or Parquet file, relative to the repository root.")
    dvc: bool = Field(
        False,
        description="The file is tracked by DVC (`<path>.dvc` beside it, written by `mlops data "
        "track PATH`) and kept in the team's DVC remote, not in git: ingest pulls it when it is "
        "missing here.",
    )

    @model_validator(mode="after")
    def _dvc_path_is_its_own(self) -> FileSource:
        top = Path(self.path).parts[:1]
        if self.dvc and top and top[0] in DVC_OWNED:
            raise ValueError(
                f"a DVC-tracked source cannot live under {top[0]}/, which DVC already tracks as "
                "an output; keep it in a folder of its own, e.g. datasets/"
            )
        return self


NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class FeatureSpec(_Section):
    """The image shorthand: ``count`` numeric columns ``<prefix><i>`` in one range, forming an
    image of ``image_shape`` (the model sees it as (h, w, 1), scaled to [0, 1])."""

    prefix: str = Field(pattern=NAME)
    count: int = Field(gt=0)
    # YAML has lists, not tuples: the pair itself is lax, its items strict.
    image_shape: Annotated[tuple[StrictInt, StrictInt], Field(strict=False)]
    min: float
    max: float

    @model_validator(mode="after")
    def _shape_matches_count(self) -> FeatureSpec:
        if self.image_shape[0] * self.image_shape[1] != self.count:
            shape = list(self.image_shape)
            raise ValueError(f"image_shape {shape} does not hold {self.count} features")
        if self.min >= self.max:
            raise ValueError("min must be below max")
        return self

    @property
    def columns(self) -> list[str]:
        """The feature column names, in order."""
        return [f"{self.prefix}{i}" for i in range(self.count)]


class NamedFeature(_Section):
    """One feature of a table: its type, valid range or vocabulary, and whether it may be null."""

    name: str = Field(pattern=NAME, max_length=64)
    type: Literal["float", "int", "bool", "categorical"]
    min: float | None = Field(None, description="float and int: the smallest valid value.")
    max: float | None = Field(None, description="float and int: the largest valid value.")
    # Bounded: each entry becomes a model input and a monitored series (its one-hot column).
    values: list[StrictStr | StrictInt] | None = Field(
        None,
        max_length=1000,
        description="categorical: the vocabulary, all strings or all integers (at most 1000).",
    )
    nullable: bool = Field(
        False, description="Whether the value may be missing (encoded as 0 plus an indicator)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> NamedFeature:
        where = f"feature {self.name!r}"
        numeric = self.type in ("float", "int")
        if numeric:
            if self.min is None or self.max is None:
                raise ValueError(
                    f"{where} ({self.type}) needs min and max: its declared range, which "
                    "validation checks and the preprocessing scales by"
                )
            if self.min >= self.max:
                raise ValueError(f"{where}: min {self.min:g} must be below max {self.max:g}")
        elif self.min is not None or self.max is not None:
            raise ValueError(f"{where}: min/max are for float and int features, not {self.type}")
        if self.type == "categorical":
            self._check_vocabulary(where)
        elif self.values is not None:
            raise ValueError(f"{where}: values (a vocabulary) is for categorical features only")
        return self

    def _check_vocabulary(self, where: str) -> None:
        if not self.values:
            raise ValueError(f"{where}: a categorical feature needs a non-empty values list")
        bad = [v for v in self.values if isinstance(v, str) and not 1 <= len(v) <= 100]
        if bad:
            shown = bad[0] if len(bad[0]) <= 20 else bad[0][:20] + "..."
            raise ValueError(f"{where}: vocabulary entry {shown!r} must be 1 to 100 characters")
        kinds = {type(v) for v in self.values}
        if len(kinds) > 1:
            raise ValueError(f"{where}: values must be all strings or all integers, not both")
        repeated = sorted({str(v) for v in self.values if self.values.count(v) > 1})
        if repeated:
            raise ValueError(f"{where}: values lists {', '.join(repeated)} more than once")

    def serving(self) -> serving_features.Feature:
        """The feature as the server and the preprocessing hold it."""
        from pipelines.serving import features as serving_features

        return serving_features.Feature(
            name=self.name,
            type=self.type,
            min=self.min,
            max=self.max,
            values=tuple(self.values or ()),
            nullable=self.nullable,
        )


def _features_form(value: Any) -> str:
    return "named" if isinstance(value, list) else "image"


# A list is named features, anything else the image shorthand: errors then come from the one
# form the user wrote, not from both.
Features = Annotated[
    Annotated[FeatureSpec, Tag("image")] | Annotated[list[NamedFeature], Tag("named")],
    Discriminator(_features_form),
]


class LabelSpec(_Section):
    """The label column, and what it may hold: the classes (classification) or the valid range
    of the target (regression). Which of them is required depends on the model's task."""

    column: str = Field(pattern=NAME)
    classes: list[int] | None = Field(
        None, min_length=2, description="classification: the classes the label may hold."
    )
    min: float | None = Field(None, description="regression: the smallest valid target value.")
    max: float | None = Field(None, description="regression: the largest valid target value.")

    @model_validator(mode="after")
    def _consistent(self) -> LabelSpec:
        classes = self.classes or []
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f"classes lists {repeated} more than once")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min {self.min:g} must be below max {self.max:g}")
        return self

    @property
    def class_list(self) -> list[int]:
        """The classes of a classifier's label (empty for a regression target)."""
        return list(self.classes or [])


class SplitSpec(_Section):
    """The validation and test fractions, and the seed of the split."""

    validation: Fraction = 0.15
    test: Fraction = 0.2
    seed: int = 42

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitSpec:
        if self.validation + self.test >= 0.9:
            raise ValueError("validation + test must leave at least 10% for training")
        return self


class ExpectationSpec(_Section):
    """What the data must satisfy before training: row count and, for a classifier, class
    balance (the class_fraction keys; a regression model may not state them)."""

    min_rows: int = Field(50, gt=0)
    class_fraction_min: Fraction = 0.05
    class_fraction_max: Fraction = 0.2

    @model_validator(mode="after")
    def _bounds_in_order(self) -> ExpectationSpec:
        if self.class_fraction_min > self.class_fraction_max:
            raise ValueError("class_fraction_min must not exceed class_fraction_max")
        return self


class DataConfig(_Section):
    """Where the data comes from, its columns, its split and its expectations."""

    source: SklearnSource | FileSource = Field(discriminator="kind")
    features: Features = Field(
        description="The image shorthand {prefix, count, image_shape, min, max}, or a list of "
        "named features {name, type, min, max, values, nullable}."
    )
    label: LabelSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    expectations: ExpectationSpec = Field(default_factory=ExpectationSpec)

    @model_validator(mode="after")
    def _named_features_are_distinct(self) -> DataConfig:
        if isinstance(self.features, list):
            if not self.features:
                raise ValueError("features: the list of named features is empty")
            names = [f.name for f in self.features]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"features: feature(s) {', '.join(repeated)} listed twice")
        if self.label.column in self.feature_columns:
            raise ValueError(
                f"features: the label column {self.label.column!r} is listed as a feature "
                "(a model would learn its answer from its input)"
            )
        return self

    @property
    def feature_columns(self) -> list[str]:
        """The raw feature columns of the table, in order."""
        if isinstance(self.features, list):
            return [f.name for f in self.features]
        return self.features.columns

    def feature_schema(self) -> serving_features.ImageSchema | serving_features.TableSchema:
        """The feature schema with its preprocessing (pipelines/serving/features.py), the one
        that training, evaluation and the server share."""
        from pipelines.serving import features as serving_features

        spec = self.features
        if isinstance(spec, list):
            return serving_features.TableSchema(tuple(f.serving() for f in spec))
        return serving_features.ImageSchema(
            tuple(spec.columns), spec.image_shape, spec.min, spec.max
        )


class DistributionConfig(_Section):
    """How many processes train together (MultiWorkerMirroredStrategy with tf_keras)."""

    workers: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "Training processes. 1 (the default) trains in the stage's own process and is "
            "byte-reproducible; N > 1 trains across N workers (local processes over loopback, "
            "or the pods of the training Job), sharing the global batch_size. "
            "`mlops train --workers N` overrides it."
        ),
    )


class TrainingConfig(_Section):
    """How the model is built and trained."""

    architecture: str = Field("architecture.py", description="File defining build_model().")
    epochs: int = Field(12, gt=0, le=1000)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(0.002, gt=0)
    seed: int = 1234
    threads: int = Field(1, gt=0, le=64)
    params: dict[str, Any] = Field(default_factory=dict)
    distribution: DistributionConfig = Field(default_factory=DistributionConfig)

    @model_validator(mode="after")
    def _batch_splits_across_workers(self) -> TrainingConfig:
        workers = self.distribution.workers
        if self.batch_size % workers:
            raise ValueError(
                f"batch_size {self.batch_size} does not split evenly across "
                f"distribution.workers {workers}: each worker takes batch_size / workers"
            )
        return self


# What a search-space name may address: a training value, or one of training.params's keys.
TUNABLE = {"learning_rate": "float", "batch_size": "int", "epochs": "int"}
PARAMS_PREFIX = "params."
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class SearchDimension(_Section):
    """One dimension of a tuning search space: a float or int range (optionally log-scaled or
    stepped), or a list of choices. Optuna's suggest_float/suggest_int/suggest_categorical."""

    type: Literal["float", "int", "categorical"]
    low: StrictInt | StrictFloat | None = None
    high: StrictInt | StrictFloat | None = None
    log: bool = False
    step: StrictInt | StrictFloat | None = Field(None, gt=0)
    choices: list[Scalar] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SearchDimension:
        if self.type == "categorical":
            return self._categorical()
        if self.choices is not None:
            raise ValueError(f"a {self.type} dimension takes low/high, not `choices`")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} dimension needs both `low` and `high`")
        if self.type == "int" and not all(
            isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None
        ):
            raise ValueError("an int dimension needs integer low, high and step")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled dimension needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("`log` and `step` cannot be combined (Optuna refuses it)")
        return self

    def _categorical(self) -> SearchDimension:
        if not self.choices:
            raise ValueError("a categorical dimension needs a non-empty `choices` list")
        if self.low is not None or self.high is not None or self.log or self.step:
            raise ValueError("a categorical dimension takes `choices` only")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"choices {self.choices} repeat a value")
        return self

    def values_are(self, kind: str) -> bool:
        """Whether every value this dimension can take is a ``kind`` ("int" or "float"; an
        int counts as a float)."""
        if self.type != "categorical":
            return self.type == kind
        kinds = (int, float) if kind == "float" else (int,)
        return all(isinstance(v, kinds) and not isinstance(v, bool) for v in self.choices or [])


class PrunerConfig(_Section):
    """Epoch-by-epoch pruning: Optuna's MedianPruner stops a trial whose validation metric is
    worse than the median of earlier trials at the same epoch; `none` never prunes."""

    kind: Literal["median", "none"] = "median"
    startup_trials: int = Field(
        2, ge=0, description="Trials that run to the end before any trial is pruned."
    )
    warmup_epochs: int = Field(1, ge=0, description="Epochs of each trial never pruned.")


class TuningConfig(_Section):
    """`mlops tune`: an Optuna study over `space`, scored on the validation split."""

    space: dict[str, SearchDimension] = Field(
        description="name -> dimension; a name is learning_rate, batch_size, epochs or "
        "params.<key of training.params>."
    )
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = Field(0, description="The sampler's seed (worker i uses seed + i).")
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="Default: maximize val_accuracy, minimize val_loss."
    )
    trials: int = Field(20, ge=1, le=10_000, description="Finished trials the study must hold.")
    timeout_s: float | None = Field(None, gt=0, description="Per worker, in seconds.")
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    heartbeat_s: int = Field(
        10, ge=1, le=3600, description="How often a running trial says it is alive."
    )
    grace_s: int = Field(
        30,
        ge=2,
        le=86_400,
        description="A running trial silent this long is failed (its worker died) and retried.",
    )
    max_retry: int = Field(2, ge=0, le=100, description="Retries of a trial whose worker died.")

    @model_validator(mode="after")
    def _valid(self) -> TuningConfig:
        if not self.space:
            raise ValueError("space is empty: name at least one dimension to search")
        if self.grace_s <= self.heartbeat_s:
            raise ValueError("grace_s must exceed heartbeat_s")
        wanted = "maximize" if self.metric == "val_accuracy" else "minimize"
        if self.direction is not None and self.direction != wanted:
            raise ValueError(f"{self.metric} is to {wanted}, not to {self.direction}")
        return self

    @property
    def goal(self) -> Literal["maximize", "minimize"]:
        """The direction of the study (a regression model's metric is always val_loss)."""
        return "maximize" if self.metric == "val_accuracy" else "minimize"


def tuning_target_problem(name: str, kind_ok: bool | None, params: dict[str, Any]) -> str | None:
    """Why a search-space or tuned.yaml name cannot address a training value, if it cannot."""
    if name in TUNABLE:
        if kind_ok is False:
            return f"{name} takes {TUNABLE[name]} values"
        return None
    if name.startswith(PARAMS_PREFIX) and name[len(PARAMS_PREFIX) :] in params:
        return None
    known = [*TUNABLE, *(PARAMS_PREFIX + k for k in sorted(params))]
    return f"unknown target {name!r} (one of: {', '.join(known)})"


class ExportConfig(_Section):
    """How the trained model is converted to TFLite."""

    quantization: Literal["none", "dynamic_range", "float16"] = "dynamic_range"


class PerClassRule(_Section):
    """The minimum recall of every class, with per-class overrides."""

    min_recall: float = Field(0.8, ge=0, le=1)
    overrides: dict[int, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)


class ChangeRule(_Section):
    """How the candidate must compare with the serving model on the same test set."""

    require: Literal["not_worse", "better"] = "not_worse"
    max_drop: float = Field(
        0.01,
        ge=0,
        le=1,
        description="classification: the non-inferiority margin: the 95% interval's lower "
        "bound on the accuracy delta may not fall below -max_drop.",
    )
    max_increase: float = Field(
        0.05,
        ge=0,
        le=10,
        description="regression: the non-inferiority margin, a fraction of the baseline's MAE: "
        "the 95% interval's upper bound on the mean per-example increase in absolute error may "
        "not exceed max_increase x MAE_baseline (0.05: at most 5% worse).",
    )
    alpha: float = Field(0.05, gt=0, lt=1)
    bootstrap_resamples: int = Field(10_000, ge=100, le=1_000_000)
    seed: int = 0
    on_missing_baseline: Literal["pass", "fail"] = "pass"
    baseline_environment: str = Field(
        "production",
        pattern=DNS_LABEL,
        description=(
            "Whose live model is the baseline: its active release's model artifact is fetched "
            "from the registry by digest. `mlops gate --baseline FILE` overrides it."
        ),
    )


# The threshold keys of each task: a model may state only its own task's.
CLASSIFICATION_THRESHOLDS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
REGRESSION_THRESHOLDS = ("max_rmse", "max_mae", "min_r2")


class Thresholds(_Section):
    """Absolute limits on the test metrics; a metric left unset is not gated. A classifier
    states minimums (accuracy, macro_*), a regressor maximum errors and a minimum R²."""

    accuracy: float | None = Field(0.9, ge=0, le=1)
    macro_precision: float | None = Field(None, ge=0, le=1)
    macro_recall: float | None = Field(None, ge=0, le=1)
    macro_f1: float | None = Field(0.9, ge=0, le=1)
    max_rmse: float | None = Field(None, gt=0, description="regression: the largest test RMSE.")
    max_mae: float | None = Field(None, gt=0, description="regression: the largest test MAE.")
    min_r2: float | None = Field(None, le=1, description="regression: the smallest test R².")

    def of(self, task: Task) -> dict[str, float]:
        """The stated limits of ``task``'s metrics (the classification defaults apply to a
        classifier only)."""
        keys = CLASSIFICATION_THRESHOLDS if task == "classification" else REGRESSION_THRESHOLDS
        return {k: v for k in keys if (v := getattr(self, k)) is not None}


class SliceRule(_Section):
    """`gate.slices`: judge the test set cut by one named feature, slice by slice (TFMA's
    idea): each slice gets an absolute limit and the paired not-worse check against the
    baseline (the change rule's margin) on its own rows. A slice with fewer than ``min_rows``
    rows is reported as too small to judge, not passed or failed on noise."""

    feature: str = Field(pattern=NAME, description="A named feature of data.features.")
    bins: list[float] | None = Field(
        None,
        min_length=1,
        max_length=50,
        description="float and int features: strictly increasing edges; the slices are "
        "(-inf, e1), [e1, e2), ..., [en, inf).",
    )
    values: list[StrictStr | StrictInt | StrictBool] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="categorical and bool features: the values to slice by (default: the whole "
        "vocabulary, or true and false).",
    )
    min_rows: int = Field(30, ge=1, description="Fewer test rows: too small to judge.")
    min_accuracy: float | None = Field(None, ge=0, le=1, description="classification.")
    max_mae: float | None = Field(None, gt=0, description="regression.")

    @model_validator(mode="after")
    def _one_way_to_cut(self) -> SliceRule:
        if self.bins is not None and self.values is not None:
            raise ValueError(f"slice {self.feature!r}: give bins or values, not both")
        if self.bins is not None and self.bins != sorted(set(self.bins)):
            raise ValueError(f"slice {self.feature!r}: bins must be strictly increasing")
        return self


class GateConfig(_Section):
    """What a model must meet to be blessed for release."""

    thresholds: Thresholds = Field(default_factory=Thresholds)
    max_size_bytes: int | None = Field(None, gt=0)
    max_latency_p99_ms: float | None = Field(None, gt=0)
    per_class: PerClassRule = Field(
        default_factory=PerClassRule, description="classification only."
    )
    change: ChangeRule = Field(default_factory=ChangeRule)
    slices: list[SliceRule] = Field(default_factory=list, max_length=20)


PINNED_IMAGE = r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$"
# An OCI registry with an optional namespace, host[:port][/namespace], in lower case as the
# distribution spec names repositories (scripts/check-inputs.sh checks REGISTRY the same way).
# The host must look like one (a dot, a port or localhost): Docker would read "acme/models" as
# Docker Hub's user "acme", not as a registry.
REGISTRY_REF = (
    r"^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+"
    r"|[a-z0-9]([a-z0-9.-]*[a-z0-9])?:[0-9]{1,5})(:[0-9]{1,5})?"
    r"(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$"
)


class VerifyConfig(_Section):
    """How the built image is checked before release."""

    ready_timeout_s: float = Field(
        60.0,
        gt=0,
        le=600,
        description=("How long the image may take to answer /readyz before verification fails."),
    )
    latency_requests: int = Field(
        200,
        ge=10,
        le=100_000,
        description=("Single-example requests sent one after another to measure p50/p99 latency."),
    )


class ServingConfig(_Section):
    """The serving process and the image it runs in."""

    port: int = Field(contract.PORT, ge=1024, le=65535)
    max_batch: int = Field(256, gt=0, le=100_000)
    max_body_bytes: int = Field(1_048_576, ge=256)
    base_image: str = Field(
        "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7",
        pattern=PINNED_IMAGE,
        description=(
            "Base of the serving image, pinned by digest. BASE_IMAGE overrides it, and so does "
            "the base `make infra-up` builds where public registries are out of reach."
        ),
    )
    verify: VerifyConfig = Field(default_factory=VerifyConfig)


class MonitoringConfig(_Section):
    """How a release is watched: the reference profile train computes (its window, false-alarm
    rates and bootstrap), and the service level the rendered alerts hold it to."""

    window_instances: int = Field(
        200,
        ge=20,
        le=100_000,
        description=(
            "Instances in one drift window. The drift thresholds are calibrated for windows of "
            "this size; the alert rules look at windows holding about as many."
        ),
    )
    false_alarm_rate: Fraction = Field(
        0.01,
        le=0.5,
        description="Share of reference-like windows allowed to exceed each drift threshold.",
    )
    anomaly_false_alarm_rate: Fraction = Field(
        0.01,
        le=0.5,
        description="Share of reference-like instances allowed to score above the anomaly "
        "threshold (epsilon), chosen on the validation split.",
    )
    bootstrap_windows: int = Field(
        2000, ge=100, le=100_000, description="Windows drawn to calibrate the drift thresholds."
    )
    seed: int = 0
    latency_p99_ms: float = Field(
        25.0,
        gt=0,
        le=60_000,
        description="Service level: the p99 request latency, in milliseconds, above which "
        "the latency alert fires.",
    )


# The monitoring settings the reference profile depends on (train reads them; the SLO is not
# one of them, so changing it does not retrain).
PROFILE_PARAMS = (
    "window_instances",
    "false_alarm_rate",
    "anomaly_false_alarm_rate",
    "bootstrap_windows",
    "seed",
)


QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"


class Resources(_Section):
    """CPU and memory requests and limits of a serving pod."""

    cpu_request: str = Field("100m", pattern=QUANTITY)
    memory_request: str = Field("128Mi", pattern=QUANTITY)
    cpu_limit: str = Field("500m", pattern=QUANTITY)
    memory_limit: str = Field("256Mi", pattern=QUANTITY)


class DeployConfig(_Section):
    """How the model is deployed to Kubernetes."""

    image_repository: str = Field(
        pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$",
        description="The registry repository the serving image is pushed to. Required, not "
        "derived from the model's name: two forks pushing to one registry must not collide.",
    )
    replicas: int = Field(
        2,
        ge=1,
        le=100,
        description=(
            "Pods per color, and the autoscaler's minimum. An environment may override it."
        ),
    )
    max_replicas: int = Field(6, ge=1, le=1000)
    target_cpu_utilization: int = Field(70, ge=10, le=100)
    service_port: int = Field(80, ge=1, le=65535)
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _max_at_least_min(self) -> DeployConfig:
        if self.max_replicas < self.replicas:
            raise ValueError("max_replicas must be at least replicas")
        return self


class ModelConfig(_Section):
    """A model's configuration: models/<name>/model.yaml."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    description: str = ""
    task: Task = Field(
        description="What the model predicts: classification (one of data.label.classes) or "
        "regression (a number within data.label's min and max)."
    )
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    deploy: DeployConfig
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    tuning: TuningConfig | None = Field(
        None, description="`mlops tune`'s search; absent: the model is not tuned."
    )

    @model_validator(mode="after")
    def _tuning_targets_exist(self) -> ModelConfig:
        if self.tuning is None:
            return self
        for name, dim in self.tuning.space.items():
            kind = TUNABLE.get(name)
            problem = tuning_target_problem(
                name, dim.values_are(kind) if kind else None, self.training.params
            )
            if problem:
                raise ValueError(f"tuning.space: {problem}")
        return self

    @model_validator(mode="after")
    def _overrides_name_real_classes(self) -> ModelConfig:
        classes = self.data.label.class_list
        unknown = sorted(set(self.gate.per_class.overrides) - set(classes))
        if unknown and self.task == "classification":
            raise ValueError(
                f"gate.per_class.overrides names class(es) {unknown} that are not "
                f"in data.label.classes {classes}"
            )
        return self

    @model_validator(mode="after")
    def _settings_fit_the_task(self) -> ModelConfig:
        problems = task_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        if self.task == "regression" and self.tuning and self.tuning.metric == "val_accuracy":
            if "metric" in self.tuning.model_fields_set:
                raise ValueError("tuning.metric: a regression model is tuned on val_loss")
            # val_loss is the only metric a regressor has: not a choice left to a default.
            tuning = self.tuning.model_copy(update={"metric": "val_loss"})
            return self.model_copy(update={"tuning": tuning})
        return self

    @model_validator(mode="after")
    def _slices_name_features(self) -> ModelConfig:
        problems = [p for rule in self.gate.slices if (p := slice_problem(self, rule))]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def classes(self) -> list[int]:
        """The classes of a classifier (empty for a regression model)."""
        return self.data.label.class_list

    def section_hash(self, *sections: str) -> str:
        """sha256 of the named sections, canonically serialised: the stage's parameter hash.
        A dotted name ("monitoring.seed") names one key of a section, as DVC's params do."""
        dump = self.model_dump(mode="json")
        payload = {
            s: functools.reduce(lambda node, key: node[key], s.split("."), dump) for s in sections
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def task_problems(model: ModelConfig) -> list[str]:
    """The settings ``model`` states that belong to the other task, or that its task lacks."""
    label, gate, task = model.data.label, model.gate, model.task
    other = "regression" if task == "classification" else "classification"
    problems: list[str] = []
    if task == "classification":
        if label.classes is None:
            problems.append("data.label.classes: a classifier needs its classes")
        stated = [k for k in ("min", "max") if getattr(label, k) is not None]
        foreign = [
            f"gate.thresholds.{k}"
            for k in REGRESSION_THRESHOLDS
            if getattr(gate.thresholds, k) is not None
        ]
        foreign += [
            f"gate.slices[{r.feature}].max_mae" for r in gate.slices if r.max_mae is not None
        ]
        foreign += (
            ["gate.change.max_increase"] if "max_increase" in gate.change.model_fields_set else []
        )
    else:
        if label.min is None or label.max is None:
            problems.append("data.label: a regression target needs min and max (its range)")
        stated = ["classes"] if label.classes is not None else []
        foreign = [
            f"gate.thresholds.{k}"
            for k in CLASSIFICATION_THRESHOLDS
            if k in gate.thresholds.model_fields_set
        ]
        foreign += ["gate.per_class"] if "per_class" in gate.model_fields_set else []
        foreign += ["gate.change.max_drop"] if "max_drop" in gate.change.model_fields_set else []
        foreign += [
            f"gate.slices[{r.feature}].min_accuracy"
            for r in gate.slices
            if r.min_accuracy is not None
        ]
        foreign += [
            f"data.expectations.{k}"
            for k in ("class_fraction_min", "class_fraction_max")
            if k in model.data.expectations.model_fields_set
        ]
    if stated:
        problems.append(f"data.label.{', '.join(stated)}: not for a {task} model")
    problems += [f"{k}: a {other} setting, and this model's task is {task}" for k in foreign]
    return problems


def slice_problem(model: ModelConfig, rule: SliceRule) -> str | None:
    """Why ``rule`` cannot cut this model's test set (None when it can)."""
    where = f"gate.slices: feature {rule.feature!r}"
    features = model.data.features
    if not isinstance(features, list):
        return f"{where}: slices need named features, not the image shorthand"
    spec = next((f for f in features if f.name == rule.feature), None)
    if spec is None:
        return f"{where} is not in data.features ({', '.join(f.name for f in features)})"
    if spec.type in ("float", "int"):
        return None if rule.bins else f"{where} is {spec.type}: give bins (edges), not values"
    if rule.bins is not None:
        return f"{where} is {spec.type}: give values (or none: all of them), not bins"
    allowed = slice_values(model, rule.model_copy(update={"values": None}))
    # bool is an int in Python: True would match a vocabulary's 1 without the type check.
    unknown = [
        v
        for v in rule.values or []
        if v not in allowed or isinstance(v, bool) != (spec.type == "bool")
    ]
    if unknown:
        return f"{where}: {unknown} not among its values {allowed}"
    return None


def slice_values(model: ModelConfig, rule: SliceRule) -> list[Any]:
    """The values a categorical or bool slice rule cuts by: its own, or all of the feature's."""
    if rule.values is not None:
        return list(rule.values)
    features = model.data.features
    spec = (
        next((f for f in features if f.name == rule.feature), None)
        if isinstance(features, list)
        else None
    )
    if spec is None or spec.type not in ("categorical", "bool"):
        return []
    return list(spec.values or []) if spec.type == "categorical" else [True, False]


TUNED_FILE = "tuned.yaml"


class TunedValues(_Section):
    """The training values a study chose, shaped like model.yaml's `training` section."""

    learning_rate: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    epochs: int | None = Field(None, gt=0, le=1000)
    params: dict[str, Scalar] = Field(default_factory=dict)

    def flat(self) -> dict[str, Any]:
        """Name -> value, with the names a search space uses (params.<key>)."""
        out: dict[str, Any] = {k: v for k in TUNABLE if (v := getattr(self, k)) is not None}
        out.update({PARAMS_PREFIX + k: v for k, v in self.params.items()})
        return out


class TunedFile(_Section):
    """models/<name>/tuned.yaml, written by `mlops tune`, committed, read by every stage:
    its `training` values take precedence over model.yaml's."""

    study: str
    metric: Literal["val_accuracy", "val_loss"]
    direction: Literal["maximize", "minimize"]
    value: float
    best_trial: int = Field(ge=0)
    finished_trials: int = Field(ge=1)
    states: dict[str, int] = Field(default_factory=dict)  # trials per state (COMPLETE, ...)
    # fANOVA importance per space name: the reviewer's "what mattered" (empty if too few).
    importances: dict[str, float] = Field(default_factory=dict)
    space_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    training: TunedValues


def apply_tuned(model: ModelConfig, tuned: TunedFile) -> ModelConfig:
    """``model`` with the tuned values over its `training` section; a ValueError naming a
    value that no longer addresses a training value (a renamed architecture parameter)."""
    for name in tuned.training.flat():
        problem = tuning_target_problem(name, None, model.training.params)
        if problem:
            raise ValueError(problem)
    values = tuned.training
    training = model.training.model_dump()
    training.update({k: v for k in TUNABLE if (v := getattr(values, k)) is not None})
    training["params"] = {**training["params"], **values.params}
    return model.model_copy(update={"training": TrainingConfig.model_validate(training)})


@dataclass(frozen=True)
class Workspace:
    """Where things live for one model. Paths are absolute; nothing here touches the disk."""

    root: Path
    model: ModelConfig
    # models/<name>/tuned.yaml when present: already merged into model.training.
    tuned: TunedFile | None = None

    @property
    def name(self) -> str:
        """The model's name."""
        return self.model.name

    @property
    def model_dir(self) -> Path:
        """The model's folder, models/<name>/."""
        return self.root / MODELS_DIR / self.name

    @property
    def data_dir(self) -> Path:
        """Where the model's data splits are written."""
        return self.root / "data" / self.name

    def split_path(self, split: str) -> Path:
        """The Parquet file of one data split."""
        return self.data_dir / f"{split}.parquet"

    def artifacts(self, stage: str) -> Path:
        """The folder a stage writes its artifacts to."""
        return self.root / "artifacts" / self.name / stage


SPLITS = ("train", "validation", "test")


def json_schema() -> dict[str, Any]:
    """The JSON schema of model.yaml, for editors and `mlops config --schema`."""
    return ModelConfig.model_json_schema()


# --- Environments: the state a release edits, and where it is committed -----------------------

COLORS = ("blue", "green")
Color = Literal["blue", "green"]
ENVIRONMENTS_DIR = "manifests/environments"


class ReleaseRecord(_Strict):
    """What runs in one color: enough to trace it back to data, code and evidence."""

    release_id: str = Field(pattern=DNS_LABEL, max_length=52)
    image: str = Field(pattern=PINNED_IMAGE)
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    model_artifact: str = Field("", pattern=r"^$|" + PINNED_IMAGE)
    data_md5: str = Field(pattern=r"^[0-9a-f]{32}(\.dir)?$")
    source_commit: str = Field(pattern=r"^([0-9a-f]{40}|unknown)$")
    gate: Literal["blessed"] = "blessed"
    metrics: dict[str, float] = Field(default_factory=dict)
    released_at: str = Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class ModelSlot(_Strict):
    """Blue-green for one model in one environment."""

    active: Color | None = None
    replicas: int | None = Field(None, ge=1, le=100)
    blue: ReleaseRecord | None = None
    green: ReleaseRecord | None = None

    @model_validator(mode="after")
    def _active_has_a_release(self) -> ModelSlot:
        if self.active is not None and self.color(self.active) is None:
            raise ValueError(f"active color {self.active} holds no release")
        if self.active is None and (self.blue or self.green):
            raise ValueError("a release is deployed but no color is active")
        return self

    def color(self, name: str) -> ReleaseRecord | None:
        """The release in a color (blue or green), if any."""
        record: ReleaseRecord | None = getattr(self, name)
        return record

    @property
    def idle(self) -> Color | None:
        """The preview color: the one not serving, or None before the first release."""
        if self.active is None:
            return None
        return "green" if self.active == "blue" else "blue"


class NodePool(_Strict):
    """The node pool an environment's pods are scheduled on: what one node offers to pods
    (its allocatable CPU and memory, as Kubernetes quantities) and how many nodes there are,
    or at most (a cluster autoscaler's maximum). `mlops capacity` packs the environment's peak
    onto it; release and promote refuse what does not fit; the namespace's ResourceQuota is
    rendered from it."""

    cpu: str = Field(description="Allocatable CPU of one node, e.g. 4 or 3500m.")
    memory: str = Field(description="Allocatable memory of one node, e.g. 16Gi.")
    nodes: StrictInt | None = Field(None, description="The number of nodes (a fixed pool).")
    max_nodes: StrictInt | None = Field(
        None, description="The autoscaler's maximum number of nodes (instead of nodes)."
    )
    limits_overcommit: float = Field(
        1.0,
        ge=1.0,
        le=10.0,
        description=(
            "How far the pods' limits may exceed the pool in total: the ResourceQuota's "
            "limits.cpu and limits.memory are the pool's capacity times this."
        ),
    )

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _number_as_quantity(cls, value: Any) -> Any:
        # `cpu: 4` is how people write it; YAML reads it as a number.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("cpu", "memory")
    @classmethod
    def _positive_quantity(cls, value: str, info: ValidationInfo) -> str:
        # The syntax only; adapters/capacity.py parses the value with the Kubernetes client's
        # parser (core/ and this module may not import the client).
        if not isinstance(value, str) or not re.fullmatch(QUANTITY, value):
            raise ValueError(
                f"{info.field_name} {value!r} is not a Kubernetes quantity (e.g. 4, 3500m, 16Gi)"
            )
        if not float(re.sub(r"[a-zA-Z]+$", "", value)) > 0:
            raise ValueError(f"{info.field_name} must be more than zero, not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_size(self) -> NodePool:
        if (self.nodes is None) == (self.max_nodes is None):
            raise ValueError("give exactly one of nodes (a fixed pool) and max_nodes (a maximum)")
        count = self.count
        if not 1 <= count <= 10_000:
            key = "nodes" if self.nodes is not None else "max_nodes"
            raise ValueError(f"{key} must be between 1 and 10000, not {count}")
        return self

    @property
    def count(self) -> int:
        """The number of nodes the pool has, or may grow to."""
        return self.nodes if self.nodes is not None else int(self.max_nodes or 0)


class EnvironmentState(_Strict):
    """An environment's state in the GitOps repository: where it runs and what is deployed."""

    environment: str = Field(pattern=DNS_LABEL, max_length=30)
    namespace: str = Field(pattern=DNS_LABEL, max_length=63)
    promotion: Literal["direct", "pr"] = Field(
        "direct",
        description=(
            "How releases land: a direct commit (mlops release) or a promotion pull request "
            "(mlops promote), which someone must approve and merge."
        ),
    )
    rollback: Literal["direct", "pr"] = "direct"
    auto_rollback: Literal["off", "pr", "direct"] = Field(
        "off",
        description=(
            "What the guard (mlops guard) may do when an alert with action=rollback fires for "
            "this environment: nothing, open a rollback pull request, or commit the rollback. "
            "Alerts carry action=rollback only where this is not off."
        ),
    )
    quarantined: list[str] = Field(
        default_factory=list,
        description=(
            "Release ids the guard took out of service. release and promote refuse them until "
            "a person removes the id here, in a reviewed commit."
        ),
    )
    node_pool: NodePool = Field(
        description=("The node pool budget the environment's peak must fit: see `mlops capacity`."),
    )
    models: dict[str, ModelSlot] = Field(default_factory=dict)


class GitHubSettings(_Strict):
    """Where pull requests go on GitHub."""

    api_url: str = "https://api.github.com"
    repository: str = Field("", pattern=r"^$|^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class GitLabSettings(_Strict):
    """Where merge requests go on GitLab."""

    api_url: str = "https://gitlab.com/api/v4"
    project: str = Field("", description="Numeric id or full path (group/name).")


class GuardDeploy(_Strict):
    """How `mlops guard` is rendered into each environment whose auto_rollback is not off."""

    image: str = Field(
        "",
        pattern=r"^$|" + PINNED_IMAGE,
        description=(
            "The tools image (git and mlops, no TensorFlow or GX; "
            "scripts/tools-image/Dockerfile), pinned by digest. Required once an "
            "environment turns auto_rollback on."
        ),
    )
    port: int = Field(9095, ge=1024, le=65535)
    max_rollbacks: int = Field(1, ge=1, le=100)
    window_minutes: int = Field(60, ge=1, le=7 * 24 * 60)
    token_secret: str = Field("mlops-guard", pattern=DNS_LABEL, description="Key `token`.")
    git_secret: str = Field(
        "mlops-gitops-write", pattern=DNS_LABEL, description="Key `token`: MLOPS_GITOPS_TOKEN."
    )
    alertmanager_namespace: str = Field("monitoring", pattern=DNS_LABEL)


class TrainingJobs(_Strict):
    """The cluster path: an Indexed Job per model that trains across the model's
    training.distribution.workers pods, and one of Optuna workers that tune it. Rendered by
    `mlops render` into manifests/jobs/<model>/ once ``image`` is set; applied by the manual
    train-cluster workflow (GitHub) or job (GitLab), never by the GitOps controller."""

    image: str = Field(
        "",
        pattern=r"^$|" + PINNED_IMAGE,
        description=(
            "The training image: mlops with its training and tuning extras (TensorFlow, "
            "tf_keras, Optuna), pinned by digest. The Jobs are rendered only once it is set: "
            "the serving and tools images hold no TensorFlow."
        ),
    )
    namespace: str = Field("mlops-training", pattern=DNS_LABEL, max_length=63)
    storage_claim: str = Field(
        "mlops-training",
        pattern=DNS_LABEL,
        max_length=63,
        description=(
            "The PersistentVolumeClaim (ReadWriteMany) every pod mounts at /workspace: a "
            "checkout of this repository with its data ingested and validated; the chief "
            "writes artifacts/<model>/train there."
        ),
    )
    port: int = Field(2222, ge=1024, le=65535, description="The workers' gRPC port.")
    backoff_limit_per_index: int = Field(
        1, ge=0, le=10, description="Retries of a failed pod, per index."
    )
    active_deadline_seconds: int = Field(21600, ge=60, le=7 * 24 * 3600)
    resources: Resources = Field(
        default_factory=lambda: Resources(
            cpu_request="1", memory_request="2Gi", cpu_limit="2", memory_limit="4Gi"
        ),
        description="Of each worker pod, training and tuning alike.",
    )
    tuning_workers: int = Field(2, ge=1, le=64, description="Optuna worker pods.")
    tuning_trials: int = Field(20, ge=1, le=100_000, description="`mlops tune --trials`.")
    tuning_timeout_s: int = Field(3600, ge=60, le=7 * 24 * 3600, description="`--timeout`.")
    tuning_storage_secret: str = Field(
        "mlops-tuning-db",
        pattern=DNS_LABEL,
        description=(
            "The Secret holding the study's PostgreSQL DSN under key `dsn`: referenced by "
            "name, never rendered."
        ),
    )


# A Kubernetes label's key (an optional DNS-subdomain prefix and a name) and value.
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{LABEL_NAME}$"
LABEL_VALUE = rf"^({LABEL_NAME})?$"
# The labels mlops selects its own objects by: a fork's selector labels must not change them.
OWN_LABELS = frozenset({"app", "app.kubernetes.io/managed-by", "grafana_dashboard"})


class MonitoringDeploy(_Strict):
    """How the monitoring objects are found by the cluster's Prometheus Operator."""

    selector_labels: dict[
        Annotated[str, StringConstraints(pattern=LABEL_KEY)],
        Annotated[str, StringConstraints(pattern=LABEL_VALUE)],
    ] = Field(
        default_factory=dict,
        description=(
            "Labels added to every PrometheusRule, PodMonitor and AlertmanagerConfig, so that "
            "the operator's ruleSelector, podMonitorSelector and alertmanagerConfigSelector "
            "pick them up (kube-prometheus-stack selects `release: <its Helm release name>`)."
        ),
    )

    @field_validator("selector_labels")
    @classmethod
    def _not_our_own(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(OWN_LABELS & value.keys())
        if taken:
            raise ValueError(f"{', '.join(taken)}: mlops sets these labels itself")
        return value


class GitOpsConfig(_Strict):
    """manifests/gitops.yaml: where releases are committed and how promotions are proposed.
    Every key can be overridden by an environment variable (see settings.ENV_OVERRIDES)."""

    remote: str = Field(
        ".infra/gitops.git",
        description=(
            "URL or path of the GitOps repository; a relative path is relative to this "
            "repository's root. The embedded default is a local bare repository."
        ),
    )
    branch: str = Field("main", pattern=r"^[A-Za-z0-9._/-]+$")
    path: str = Field(
        "manifests",
        pattern=r"^[A-Za-z0-9._/-]+$",
        description=("Folder inside the GitOps repository holding environments/ and rendered/."),
    )
    repo_url: str = Field(
        "https://github.com/your-org/your-gitops-repo.git",
        description=(
            "The URL a cluster's controller fetches (Argo CD, Flux). It may differ from remote."
        ),
    )
    registry: str = Field(
        "",
        pattern=r"^$|" + REGISTRY_REF,
        description=(
            "The OCI registry images and model artifacts are pushed to, host[:port][/namespace] "
            "(e.g. ghcr.io/acme). REGISTRY overrides it; empty: the local registry "
            "127.0.0.1:5000 that `make infra-up` starts."
        ),
    )
    provider: Literal["local", "github", "gitlab"] = "local"
    release_environment: str = Field(
        "staging",
        pattern=DNS_LABEL,
        description=("Where `mlops run` releases a verified candidate."),
    )
    promote_environment: str = Field(
        "production",
        pattern=DNS_LABEL,
        description=("Where `mlops run` then proposes it, with a promotion pull request."),
    )
    kubernetes_version: str = Field("1.33", pattern=r"^1\.\d+$")
    push_attempts: int = Field(10, ge=1, le=50)
    git_timeout: int = Field(
        120,
        ge=1,
        le=3600,
        description=(
            "Seconds any one git command (clone, fetch, push) may take before it is killed and "
            "the job fails with exit 3: a remote that accepts connections but never answers."
        ),
    )
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    gitlab: GitLabSettings = Field(default_factory=GitLabSettings)
    guard: GuardDeploy = Field(default_factory=GuardDeploy)
    monitoring: MonitoringDeploy = Field(default_factory=MonitoringDeploy)
    jobs: TrainingJobs = Field(default_factory=TrainingJobs)

    @field_validator("path")
    @classmethod
    def _path_stays_inside(cls, value: str) -> str:
        problem = relative_path_problem(value)
        if problem:
            raise ValueError(f"path must be a folder inside the GitOps repository: {problem}")
        return value

    @field_validator("repo_url")
    @classmethod
    def _controllers_accept_repo_url(cls, value: str) -> str:
        if not re.fullmatch(REPO_URL, value):
            raise ValueError(
                "repo_url must be a URL that both Argo CD and Flux accept: https://host/owner/"
                "repo.git or ssh://git@host/owner/repo.git (Flux's GitRepository requires "
                "^(http|https|ssh)://; the scp-like git@host:path form is refused), with no "
                "password or token in it"
            )
        return value

    @field_validator("remote")
    @classmethod
    def _remote_is_a_url_or_a_plain_path(cls, value: str) -> str:
        if "\0" in value or "\n" in value or value.startswith("-") or "::" in value:
            # "-" would read as a git option; "::" selects a git remote helper (ext:: runs
            # commands).
            raise ValueError(
                "remote must be a URL (https://, ssh://, git@host:path) or a "
                "path, not an option or a remote-helper address"
            )
        return value


# --- Names and paths given by users: allow-lists, and nothing outside the repository ---------

# URLs both Argo CD and Flux fetch: Flux's GitRepository requires ^(http|https|ssh)://, Argo CD
# takes those too. No password in the URL (it would be committed); an ssh user is fine.
REPO_URL = (
    r"(https?://([A-Za-z0-9._~-]+@)?|ssh://[A-Za-z0-9._~-]+@)"
    r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?/[A-Za-z0-9._~/-]*[A-Za-z0-9_~-]"
    r"(\.git)?/?"
)
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def is_local_path(remote: str) -> bool:
    """Whether git reads ``remote`` as a path: not a URL (scheme://) nor scp-like host:path
    (a ":" before any "/")."""
    return "://" not in remote and re.match(r"^[^/]*:", remote) is None


def relative_path_problem(value: str) -> str | None:
    """Why ``value`` is not a plain relative path of named folders (None when it is): no
    absolute path, no "." or ".." and no hidden segments (.git), no empty segments."""
    if not value or value.startswith("/") or "\\" in value:
        return f"{value!r} is empty, absolute or holds a backslash"
    for segment in value.split("/"):
        if not _SEGMENT.match(segment):
            return (
                f"{value!r} has the segment {segment!r} (allowed: letters, digits, ., _ "
                "and -, not starting with a dot; no empty, . or .. segments)"
            )
    return None


def require_known(what: str, value: str, known: list[str]) -> str:
    """``value`` exactly as one of ``known`` (no aliases: ./production, production/,
    Production), else a usage error listing them."""
    if value not in known or not re.fullmatch(DNS_LABEL, value):
        raise ConfigError(
            f"unknown {what} {value!r}", hint=f"known {what}s: {', '.join(known) or 'none'}"
        )
    return value

"""Typed, validated configuration: ``models/<name>/model.yaml`` and the workspace layout.

Every model.yaml is parsed into frozen pydantic models that forbid unknown keys, so a typo
fails loudly with the file, the key and what is allowed, instead of silently using a default.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.errors import ConfigError

MODELS_DIR = "models"
DEFAULT_MODEL = "digits"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class SklearnDigitsSource(_Strict):
    kind: Literal["sklearn_digits"] = "sklearn_digits"


class FileSource(_Strict):
    kind: Literal["file"]
    path: str = Field(description="CSV or Parquet file, relative to the repository root.")


class FeatureSpec(_Strict):
    prefix: str = Field("pixel_", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    count: int = Field(64, gt=0)
    image_shape: tuple[int, int] = (8, 8)
    min: float = 0.0
    max: float = 16.0

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
        return [f"{self.prefix}{i}" for i in range(self.count)]


class LabelSpec(_Strict):
    column: str = Field("label", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    classes: list[int] = Field(default_factory=lambda: list(range(10)), min_length=2)


class SplitSpec(_Strict):
    validation: Fraction = 0.15
    test: Fraction = 0.2
    seed: int = 42

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitSpec:
        if self.validation + self.test >= 0.9:
            raise ValueError("validation + test must leave at least 10% for training")
        return self


class ExpectationSpec(_Strict):
    min_rows: int = Field(50, gt=0)
    class_fraction_min: Fraction = 0.05
    class_fraction_max: Fraction = 0.2


class DataConfig(_Strict):
    source: SklearnDigitsSource | FileSource = Field(
        default_factory=SklearnDigitsSource, discriminator="kind"
    )
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    label: LabelSpec = Field(default_factory=LabelSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    expectations: ExpectationSpec = Field(default_factory=ExpectationSpec)


class TrainingConfig(_Strict):
    architecture: str = Field("architecture.py", description="File defining build_model().")
    epochs: int = Field(12, gt=0, le=1000)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(0.002, gt=0)
    seed: int = 1234
    threads: int = Field(1, gt=0, le=64)
    params: dict[str, Any] = Field(default_factory=dict)


class ExportConfig(_Strict):
    quantization: Literal["none", "dynamic_range", "float16"] = "dynamic_range"


class PerClassRule(_Strict):
    min_recall: float = Field(0.8, ge=0, le=1)
    overrides: dict[int, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)


class ChangeRule(_Strict):
    require: Literal["not_worse", "better"] = "not_worse"
    max_drop: float = Field(
        0.01, ge=0, le=1, description="Non-inferiority margin: the 95% interval's lower bound "
        "on the accuracy delta may not fall below -max_drop.",
    )
    alpha: float = Field(0.05, gt=0, lt=1)
    bootstrap_resamples: int = Field(10_000, ge=100, le=1_000_000)
    seed: int = 0
    on_missing_baseline: Literal["pass", "fail"] = "pass"


class Thresholds(_Strict):
    accuracy: float | None = Field(0.9, ge=0, le=1)
    macro_precision: float | None = Field(None, ge=0, le=1)
    macro_recall: float | None = Field(None, ge=0, le=1)
    macro_f1: float | None = Field(0.9, ge=0, le=1)


class GateConfig(_Strict):
    thresholds: Thresholds = Field(default_factory=Thresholds)
    max_size_bytes: int | None = Field(None, gt=0)
    max_latency_p99_ms: float | None = Field(None, gt=0)
    per_class: PerClassRule = Field(default_factory=PerClassRule)
    change: ChangeRule = Field(default_factory=ChangeRule)


PINNED_IMAGE = r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$"


class VerifyConfig(_Strict):
    ready_timeout_s: float = Field(60.0, gt=0, le=600, description=(
        "How long the image may take to answer /readyz before verification fails."))
    latency_requests: int = Field(200, ge=10, le=100_000, description=(
        "Single-example requests sent one after another to measure p50/p99 latency."))


class ServingConfig(_Strict):
    port: int = Field(8080, ge=1024, le=65535)
    max_batch: int = Field(256, gt=0, le=100_000)
    max_body_bytes: int = Field(1_048_576, ge=256)
    base_image: str = Field(
        "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7",
        pattern=PINNED_IMAGE, description=(
            "Base of the serving image, pinned by digest. BASE_IMAGE overrides it, and so does "
            "the base `make infra-up` builds where public registries are out of reach."))
    verify: VerifyConfig = Field(default_factory=VerifyConfig)


class Resources(_Strict):
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"


class DeployConfig(_Strict):
    image_repository: str = Field("digits", pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    replicas: int = Field(2, ge=1, le=100)
    resources: Resources = Field(default_factory=Resources)


class ModelConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    def section_hash(self, *sections: str) -> str:
        """sha256 of the named sections, canonically serialised: the stage's parameter hash."""
        payload = {s: self.model_dump(mode="json")[s] for s in sections}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Workspace:
    """Where things live for one model. Paths are absolute; nothing here touches the disk."""

    root: Path
    model: ModelConfig

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def model_dir(self) -> Path:
        return self.root / MODELS_DIR / self.name

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / self.name

    def split_path(self, split: str) -> Path:
        return self.data_dir / f"{split}.parquet"

    def artifacts(self, stage: str) -> Path:
        return self.root / "artifacts" / self.name / stage


SPLITS = ("train", "validation", "test")


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder upwards with ``models/`` and ``pyproject.toml``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / MODELS_DIR).is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise ConfigError(
        f"no repository root found at or above {here}",
        hint="run mlops inside a clone of this template (a folder with models/ and pyproject.toml)",
    )


def model_names(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (root / MODELS_DIR).glob("*/model.yaml"))


def load_model(root: Path, name: str = DEFAULT_MODEL) -> Workspace:
    root = root.resolve()
    path = root / MODELS_DIR / name / "model.yaml"
    if not path.is_file():
        known = ", ".join(model_names(root)) or "none"
        raise ConfigError(f"{path}: no such model config", hint=f"known models: {known}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        model = ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    if model.name != name:
        raise ConfigError(f"{path}: key 'name' is {model.name!r} but the folder is {name!r}",
                          hint="the folder name and the name key must agree")
    return Workspace(root=root, model=model)


def format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} invalid setting(s)"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        # Drop the union tag pydantic inserts for discriminated unions (e.g. "file").
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(ModelConfig, err["loc"][:-1])
            lines.append(f"  - {key}: unknown key (allowed here: {', '.join(allowed)})")
        else:
            lines.append(f"  - {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _allowed_keys(cls: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    current: Any = cls
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            break
        annotation = fields[part].annotation
        current = _first_model(annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return sorted(fields)


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def json_schema() -> dict[str, Any]:
    return ModelConfig.model_json_schema()

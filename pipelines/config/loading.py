"""Files into schema objects: find the repository, read model.yaml, gitops.yaml and the
environment states, and turn a validation error into a ConfigError that names the file and key.

Environment variables are not read here: ``load_gitops`` applies the overrides that
settings.py read (see settings.ENV_OVERRIDES).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipelines.config.schema import (
    DEFAULT_MODEL,
    MODELS_DIR,
    REQUIRED_BY_TASK,
    REQUIRED_KEYS,
    TUNED_FILE,
    EnvironmentState,
    FileSource,
    GitOpsConfig,
    ModelConfig,
    NamedFeature,
    TunedFile,
    Workspace,
    apply_tuned,
    is_local_path,
    relative_path_problem,
    require_known,
)
from pipelines.config.settings import ENV_OVERRIDES, read_settings
from pipelines.errors import ConfigError

_M = TypeVar("_M", bound=BaseModel)
FORMS = ("image", "named")


class _Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e-3` (no dot) is a string; strict numbers would then
    refuse what every YAML 1.2 reader, and every user, takes for 0.001."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML safely, reading `1e-3` as a number as YAML 1.2 does (PyYAML reads 1.1)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


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
    """The models that have a models/<name>/model.yaml, sorted."""
    return sorted(p.parent.name for p in (root / MODELS_DIR).glob("*/model.yaml"))


def load_model(root: Path, name: str = DEFAULT_MODEL, *, tuned: bool = True) -> Workspace:
    """A model's validated config and workspace, with tuned.yaml's values over `training`
    unless ``tuned`` is False; a usage error naming the known models."""
    root = root.resolve()
    require_known("model", name, model_names(root))
    path = root / MODELS_DIR / name / "model.yaml"
    if not path.is_file():
        known = ", ".join(model_names(root)) or "none"
        raise ConfigError(f"{path}: no such model config", hint=f"known models: {known}")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    # Every problem at once: each required key that is missing (all of them, where pydantic
    # stops at a missing section), then what pydantic finds in what is there.
    missing = missing_keys(raw)
    lines = [f"  - {key}: required, not stated ({what})" for key, what in missing]
    model = None
    try:
        model = ModelConfig.model_validate(raw)
    except ValidationError as exc:
        stated = {key for key, _ in missing}
        lines += [
            line
            for loc, line in error_lines(exc, ModelConfig)
            # pydantic's "Field required" on a key, or on a whole section, already said above
            if not any(
                loc == k or f"{loc}.".startswith(f"{k}.") or k.startswith(f"{loc}.") for k in stated
            )
        ]
    if lines or model is None:
        raise ConfigError(
            f"{path}: {len(lines)} invalid setting(s)\n" + "\n".join(lines),
            hint="state each required key in model.yaml (nothing a fork must decide has a "
            "default); `mlops config --schema` describes every key, and "
            "models/digits/model.yaml states them all"
            if missing
            else None,
        ) from None
    if model.name != name:
        raise ConfigError(
            f"{path}: key 'name' is {model.name!r} but the folder is {name!r}",
            hint="the folder name and the name key must agree",
        )
    check_model_paths(root, model, path)
    found = load_tuned(path.parent / TUNED_FILE) if tuned else None
    if found is None:
        return Workspace(root=root, model=model)
    try:
        merged = apply_tuned(model, found)
    except (ValueError, ValidationError) as exc:
        raise ConfigError(
            f"{path.parent / TUNED_FILE}: {exc}",
            hint="re-run `mlops tune` for the current model.yaml, or delete the file to train "
            "with model.yaml's values",
        ) from None
    return Workspace(root=root, model=merged, tuned=found)


def load_tuned(path: Path) -> TunedFile | None:
    """models/<name>/tuned.yaml, validated, or None when the model has not been tuned."""
    if not path.is_file():
        return None
    return _validated(TunedFile, path, _read_yaml(path))


def missing_keys(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The required keys (schema.REQUIRED_KEYS, and REQUIRED_BY_TASK of the task ``raw`` states)
    that ``raw`` does not state, each with what it is for: all of them, where pydantic would
    stop at a missing section. A parent that is there but not a mapping is left to pydantic,
    which names its type."""
    missing = []
    task = raw.get("task")
    by_task = REQUIRED_BY_TASK.get(task, ()) if isinstance(task, str) else ()
    for keys, what in (*REQUIRED_KEYS, *by_task):
        node: Any = raw
        for key in keys:
            if not isinstance(node, Mapping):
                break
            if node.get(key) is None:
                missing.append((".".join(keys), what))
                break
            node = node[key]
    return missing


def format_validation_error(
    path: Path, exc: ValidationError, cls: type[BaseModel] | None = None
) -> str:
    """A pydantic error as lines a person fixes: the file, then each bad key and what is wrong."""
    lines = [f"{path}: {exc.error_count()} invalid setting(s)"]
    lines += [line for _, line in error_lines(exc, cls or ModelConfig)]
    return "\n".join(lines)


def error_lines(exc: ValidationError, cls: type[BaseModel]) -> list[tuple[str, str]]:
    """Each error of ``exc`` as (dotted key, the line that says what is wrong with it)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        # The tag of data.features' form (schema.Features): not a key the user wrote.
        loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "features" and p in FORMS)]
        # Drop the union tag pydantic inserts for discriminated unions (e.g. "file").
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(cls, err["loc"][:-1])
            line = f"  - {key}: unknown key (allowed here: {', '.join(allowed)})"
        elif isinstance(err.get("input"), dict):  # a whole section: the message says it all
            line = f"  - {key}: {err['msg']}"
        else:
            line = f"  - {key}: {err['msg']} (got {err.get('input')!r})"
        out.append((key, line))
    return out


def _allowed_keys(cls: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    if "named" in loc and "features" in loc:  # one of data.features' named features
        return sorted(NamedFeature.model_fields)
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


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def _validated(cls: type[_M], path: Path, raw: dict[str, Any]) -> _M:
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, cls)) from None


def load_gitops(root: Path, env: Mapping[str, str] | None = None) -> GitOpsConfig:
    """manifests/gitops.yaml (all defaults when absent) with the environment's overrides
    applied: those of ``env``, else of the process environment, read now."""
    path = root / "manifests" / "gitops.yaml"
    raw = _read_yaml(path) if path.is_file() else {}
    applied = []
    for var, value in read_settings(env).gitops_overrides:
        keys = ENV_OVERRIDES[var]
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        applied.append(var)
    try:
        cfg = _validated(GitOpsConfig, path, raw)
        if is_local_path(cfg.remote) and not Path(cfg.remote).is_absolute():
            # A relative remote is relative to the repository and stays in it (../ tricks
            # would create or write a repository elsewhere); an absolute path is explicit.
            inside(root, root / cfg.remote, f"{path}: remote")
        return cfg
    except ConfigError as exc:
        if not applied:
            raise
        raise ConfigError(
            f"{exc}\n  (with the environment overrides {', '.join(applied)})",
            hint="fix the value in manifests/gitops.yaml or the environment "
            "variable that overrides it",
        ) from None


def parse_environment(path: Path, text: str) -> EnvironmentState:
    """Validate an environment state file; a usage error naming the file if it is malformed."""
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    state = _validated(EnvironmentState, path, raw)
    if state.environment != path.stem:
        raise ConfigError(
            f"{path}: environment is {state.environment!r} but the file is {path.name}",
            hint="the file name and the environment key must agree",
        )
    return state


def environment_names(manifests: Path) -> list[str]:
    """The environments that have a state file, sorted."""
    return sorted(p.stem for p in (manifests / "environments").glob("*.yaml"))


ENVIRONMENT_HEADER = """\
# Environment state: the only input a release edits. `mlops release`, `mlops promote` and
# `mlops rollback` rewrite this file in the GitOps repository, together with rendered/{env}/,
# in one commit. promotion/rollback: direct (a commit) or pr (a pull request to approve).
"""


def dump_environment(state: EnvironmentState) -> str:
    """An environment state as YAML, under a header saying which commands rewrite it."""
    body = yaml.safe_dump(state.model_dump(mode="json"), sort_keys=False, width=100)
    return ENVIRONMENT_HEADER.format(env=state.environment) + body


def inside(base: Path, path: Path, what: str) -> Path:
    """``path`` resolved (symlinks followed), refused unless it stays inside ``base``."""
    resolved = path.resolve()
    if not resolved.is_relative_to(base.resolve()):
        raise ConfigError(
            f"{what} {path} resolves to {resolved}, outside {base.resolve()}",
            hint=f"{what} must stay inside {base.resolve()}; nothing was written",
        )
    return resolved


def require_environment(root: Path, name: str) -> str:
    """An environment name from the allow-list: the files in manifests/environments/."""
    return require_known("environment", name, environment_names(root / "manifests"))


def check_model_paths(root: Path, model: ModelConfig, where: Path) -> None:
    """The paths model.yaml names stay inside the repository (the data file) and inside the
    model's folder (the architecture), after resolving symlinks."""
    model_dir = root / MODELS_DIR / model.name
    arch = model.training.architecture
    if relative_path_problem(arch):
        raise ConfigError(
            f"{where}: training.architecture {relative_path_problem(arch)}",
            hint=f"name a file inside {model_dir}",
        )
    inside(model_dir, model_dir / arch, f"{where}: training.architecture")
    source = model.data.source
    if isinstance(source, FileSource):
        problem = relative_path_problem(source.path)
        if problem:
            raise ConfigError(
                f"{where}: data.source.path {problem}",
                hint="name a file inside the repository, relative to its root",
            )
        inside(root, root / source.path, f"{where}: data.source.path")

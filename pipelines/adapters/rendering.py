"""Rendering a manifests folder: environment state -> rendered/<env>/ and controllers/, checked.

The library behind `mlops render` and `mlops lint-manifests`, and behind every release,
promotion and rollback (they re-render what they change). It renders every environment (or
one) of a manifests folder: this repository's, or the GitOps repository's checkout during a
release. Nothing is written unless every object passes
kubernetes-validate --strict and the project's policy; ``check`` compares with what is on disk.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.adapters import capacity, manifests
from pipelines.config import (
    DNS_LABEL,
    EnvironmentState,
    GitOpsConfig,
    ModelConfig,
    environment_names,
    inside,
    load_model,
    model_names,
    parse_environment,
)
from pipelines.core import guard_render, job_render, policy, render
from pipelines.core.policy import Violation
from pipelines.errors import CheckFailed, ConfigError

# The folders a rendering owns inside a manifests folder; nothing else is touched. jobs/
# (the training and tuning Jobs, per model) belongs to no environment: only a rendering of
# everything writes it.
CONTROLLERS = ("controllers/argocd", "controllers/flux")
OWNED = ("rendered", *CONTROLLERS, job_render.JOBS_DIR)


@dataclass(frozen=True)
class Rendering:
    """Rendered manifest files, the policy violations in them, and the states they came from."""

    files: dict[str, str]  # path relative to the manifests folder -> text
    violations: list[Violation] = field(default_factory=list)
    states: dict[str, EnvironmentState] = field(default_factory=dict)

    def violations_of(self, env: str | None) -> list[Violation]:
        """All violations, or those of ``env``'s rendering and the controller objects."""
        if env is None:
            return self.violations
        return [
            v for v in self.violations if v.file.startswith((f"rendered/{env}/", "controllers/"))
        ]


def models_of(root: Path) -> dict[str, ModelConfig]:
    """Every model's configuration, by name."""
    return {name: load_model(root, name).model for name in model_names(root)}


def read_states(manifest_dir: Path) -> dict[str, EnvironmentState]:
    """Every environment's state; a usage error if there is none."""
    names = environment_names(manifest_dir)
    if not names:
        raise ConfigError(
            f"{manifest_dir / 'environments'} holds no <env>.yaml",
            hint="restore manifests/environments/ from the template",
        )
    states = {}
    for name in names:
        path = manifest_dir / "environments" / f"{name}.yaml"
        states[name] = parse_environment(path, path.read_text(encoding="utf-8"))
    return states


def render_with(
    root: Path,
    manifest_dir: Path,
    gitops: GitOpsConfig,
    states: Mapping[str, EnvironmentState] | None = None,
) -> Rendering:
    """``render_all`` with the templates and models of the checkout at ``root``: what a release,
    a merge check or ``mlops render`` renders ``manifest_dir`` (here or a GitOps clone) with."""
    return render_all(
        manifest_dir,
        manifests.load_templates(root / "manifests"),
        models_of(root),
        gitops,
        states,
        crds=root / "manifests" / manifests.CRDS,
    )


def render_all(
    manifest_dir: Path,
    templates: Mapping[str, str],
    models: Mapping[str, ModelConfig],
    gitops: GitOpsConfig,
    states: Mapping[str, EnvironmentState] | None = None,
    crds: Path | None = None,
) -> Rendering:
    """Render and check everything; ``states`` overrides what is on disk (a release in flight).
    ``crds``: the vendored CRDs custom kinds are checked against (default: manifest_dir's)."""
    crds = crds or manifest_dir / manifests.CRDS
    states = dict(states) if states is not None else read_states(manifest_dir)
    files: dict[str, str] = {}
    violations: list[Violation] = []
    try:
        for name, state in sorted(states.items()):
            objects = _objects(state, models, templates, gitops)
            files.update(environment_files(name, objects, gitops))
            parsed = {f"rendered/{name}/{o.filename}": o.obj for o in objects}
            violations += policy.check(parsed)
            violations += manifests.schema_violations(crds, parsed, gitops.kubernetes_version)
        for model in sorted(models):
            jobs = job_render.job_objects(models[model], gitops, templates)
            source = f"models/{model}/model.yaml and manifests/gitops.yaml"
            folder = f"{job_render.JOBS_DIR}/{model}"
            for fname, text in render.to_files(jobs, source).items():
                files[f"{folder}/{fname}"] = text
            parsed = {f"{folder}/{o.filename}": o.obj for o in jobs}
            violations += policy.check(parsed)
            violations += manifests.schema_violations(crds, parsed, gitops.kubernetes_version)
        controllers = render.controller_objects(
            gitops, [states[n] for n in sorted(states)], templates
        )
        for folder, objects in controllers.items():
            for fname, text in render.to_files(objects, "manifests/gitops.yaml").items():
                files[f"controllers/{folder}/{fname}"] = text
            violations += manifests.schema_violations(
                crds,
                {f"controllers/{folder}/{o.filename}": o.obj for o in objects},
                gitops.kubernetes_version,
            )
    except render.RenderError as exc:
        raise ConfigError(
            f"rendering failed: {exc}",
            hint="fix the template or the environment state; nothing was written",
        ) from None
    return Rendering(files, violations, states)


def _objects(
    state: EnvironmentState,
    models: Mapping[str, ModelConfig],
    templates: Mapping[str, str],
    gitops: GitOpsConfig,
) -> list[render.RenderedObject]:
    """An environment's objects: its models', its ResourceQuota and, where auto_rollback is
    on, its guard's."""
    quota = render.quota_object(state, templates, capacity.quota_hard(state.node_pool))
    return render.with_selector_labels(
        render._unique(
            [
                *render.environment_objects(state, models, templates),
                quota,
                *guard_render.guard_objects(state, gitops, templates),
            ]
        ),
        gitops.monitoring.selector_labels,
    )


def objects_of(
    root: Path, state: EnvironmentState, gitops: GitOpsConfig
) -> list[render.RenderedObject]:
    """The objects ``state`` renders to with the templates and models at ``root``: what
    rendered/<env>/ holds, unchecked (the capacity check counts their pods)."""
    try:
        return _objects(
            state, models_of(root), manifests.load_templates(root / "manifests"), gitops
        )
    except render.RenderError as exc:
        raise ConfigError(
            f"rendering failed: {exc}",
            hint="fix the template or the environment state; nothing was written",
        ) from None


def environment_files(
    name: str, objects: list[render.RenderedObject], gitops: GitOpsConfig
) -> dict[str, str]:
    """An environment's rendered objects as files under rendered/<env>/."""
    source = f"{gitops.path}/environments/{name}.yaml"
    return {
        f"rendered/{name}/{fname}": text for fname, text in render.to_files(objects, source).items()
    }


def render_environment(root: Path, state: EnvironmentState, gitops: GitOpsConfig) -> dict[str, str]:
    """rendered/<env>/ of one state with the templates and models at ``root``, unchecked."""
    return environment_files(state.environment, objects_of(root, state, gitops), gitops)


def owned(env: str | None, controllers: bool = False) -> tuple[str, ...]:
    """The folders a rendering replaces: all of them, or one environment's (and, with
    ``controllers``, the controller objects). ``env`` is a name, never a path: "../x" here
    would make a rendering replace a folder elsewhere."""
    if env is None:
        return OWNED
    if not re.fullmatch(DNS_LABEL, env):
        raise ConfigError(
            f"{env!r} is not an environment name",
            hint="use one of the files in manifests/environments/, by name",
        )
    return (f"rendered/{env}", *(CONTROLLERS if controllers else ()))


def on_disk(
    manifest_dir: Path, env: str | None = None, controllers: bool = False
) -> dict[str, str]:
    """The rendered files now on disk in the folders this rendering owns."""
    out: dict[str, str] = {}
    for folder in owned(env, controllers):
        out.update(
            {
                f"{folder}/{rel}": text
                for rel, text in manifests.read_tree(manifest_dir / folder).items()
            }
        )
    return out


def select(files: Mapping[str, str], env: str | None, controllers: bool = False) -> dict[str, str]:
    """The files in the folders owned for an environment (all, if env is None)."""
    return {
        k: v
        for k, v in files.items()
        if any(k.startswith(f"{folder}/") for folder in owned(env, controllers))
    }


def write(
    manifest_dir: Path, files: Mapping[str, str], env: str | None = None, controllers: bool = False
) -> None:
    """Replace the owned folders of ``manifest_dir`` (all, or ``env``'s and, with
    ``controllers``, the controller objects) with ``files``, all of them or none. A folder that
    resolves elsewhere (a symlink in a checkout) is refused before anything is written."""
    require_rendered(files, env)
    for folder in owned(env, controllers):
        inside(manifest_dir, manifest_dir / folder, "the rendered folder")
    manifests.replace_trees(
        {
            manifest_dir / folder: {
                k[len(f"{folder}/") :]: v for k, v in files.items() if k.startswith(f"{folder}/")
            }
            for folder in owned(env, controllers)
        }
    )


def require_rendered(files: Mapping[str, str], env: str | None) -> None:
    """Refuse an environment that rendered nothing: it is most likely misspelled."""
    if env is not None and not any(k.startswith(f"rendered/{env}/") for k in files):
        raise ConfigError(
            f"environment {env!r} rendered nothing",
            hint="name an environment that has a manifests/environments/ file",
        )


def require_clean(rendering: Rendering, env: str | None = None) -> None:
    """No violations at all, or none in what a change to ``env`` writes."""
    violations = rendering.violations_of(env)
    if violations:
        listing = "\n".join(f"  - {v}" for v in violations)
        raise CheckFailed(
            f"{len(violations)} manifest violation(s):\n{listing}",
            hint="fix the templates, model.yaml or environment state; "
            "nothing was written or committed",
        )


def stale_diff(
    manifest_dir: Path, files: Mapping[str, str], env: str | None = None, controllers: bool = False
) -> str:
    """A unified diff of what is on disk vs what rendering gives ('' when current)."""
    require_rendered(files, env)
    current = on_disk(manifest_dir, env, controllers)
    files = select(files, env, controllers)
    lines: list[str] = []
    for path in sorted(set(current) | set(files)):
        if current.get(path) != files.get(path):
            lines += difflib.unified_diff(
                current.get(path, "").splitlines(keepends=True),
                files.get(path, "").splitlines(keepends=True),
                fromfile=f"a/{path}" if path in current else "/dev/null",
                tofile=f"b/{path}" if path in files else "/dev/null",
            )
    return "".join(lines)


def lint(manifest_dir: Path, gitops: GitOpsConfig) -> list[Violation]:
    """Schema and policy violations of the rendered files on disk, as committed."""
    violations: list[Violation] = []
    files = on_disk(manifest_dir)
    parsed: dict[str, dict[str, object]] = {}
    for path, text in files.items():
        try:
            obj = manifests.parse(text)
        except yaml.YAMLError as exc:
            violations.append(Violation(path, "?", "yaml", f"not valid YAML: {exc}"))
            continue
        if not obj.get("apiVersion") or not obj.get("kind"):
            violations.append(Violation(path, "?", "yaml", "no apiVersion or kind"))
            continue
        parsed[path] = obj
    # Policy is checked per folder, as rendering does: a Service must select a workload of
    # its own environment (or its own model's Jobs).
    for top in ("rendered", job_render.JOBS_DIR):
        for sub in sorted({p.split("/")[1] for p in parsed if p.startswith(f"{top}/")}):
            violations += policy.check(
                {p: o for p, o in parsed.items() if p.startswith(f"{top}/{sub}/")}
            )
    violations += manifests.schema_violations(
        manifest_dir / manifests.CRDS, parsed, gitops.kubernetes_version
    )
    return violations

"""Manifests on disk: templates in, rendered trees out, and the offline schema checks
(kubernetes-validate for Kubernetes kinds, the repository's own JSON schemas for the Argo CD
and Flux objects)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from pipelines.adapters.artifacts import write_text
from pipelines.core.policy import Violation

TEMPLATES = "templates"
SCHEMAS = Path("controllers") / "schemas"
# Kinds whose schemas kubernetes-validate ships; the controllers' CRDs use ours instead.
CRD_GROUPS = ("argoproj.io/", "source.toolkit.fluxcd.io/", "kustomize.toolkit.fluxcd.io/")


def load_templates(manifests: Path) -> dict[str, str]:
    base = manifests / TEMPLATES
    return {str(p.relative_to(base)): p.read_text(encoding="utf-8")
            for p in sorted(base.rglob("*.j2"))}


def read_tree(base: Path) -> dict[str, str]:
    """{relative path: text} of the YAML files under ``base`` (empty if it does not exist)."""
    if not base.is_dir():
        return {}
    return {str(p.relative_to(base)): p.read_text(encoding="utf-8")
            for p in sorted(base.rglob("*.yaml"))}


def replace_tree(base: Path, files: Mapping[str, str]) -> None:
    """Make ``base`` hold exactly ``files``, swapping the folder in whole (nothing half-written,
    and objects no longer rendered disappear)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=base.parent, prefix=f".{base.name}.new."))
    try:
        for rel, text in files.items():
            write_text(stage / rel, text)
        for d in [stage, *stage.rglob("*")]:
            if d.is_dir():
                d.chmod(0o755)
        old = base.parent / f".{base.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if base.exists():
            base.replace(old)
        stage.replace(base)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def parse(text: str) -> dict[str, Any]:
    obj = yaml.safe_load(text)
    return obj if isinstance(obj, dict) else {}


@cache
def _controller_schema(manifests: Path, kind: str) -> dict[str, Any] | None:
    path = manifests / SCHEMAS / f"{kind.lower()}.schema.json"
    if not path.is_file():
        return None
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def schema_violations(manifests: Path, files: Mapping[str, Mapping[str, Any]],
                      kubernetes_version: str) -> list[Violation]:
    """kubernetes-validate --strict for built-in kinds; our schemas for controller CRDs."""
    import jsonschema
    import kubernetes_validate

    out: list[Violation] = []
    for file, obj in sorted(files.items()):
        ident = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
        if str(obj.get("apiVersion", "")).startswith(CRD_GROUPS):
            schema = _controller_schema(manifests, str(obj.get("kind")))
            if schema is None:
                out.append(Violation(file, ident, "schema", "no schema in "
                                     f"{SCHEMAS}/ for kind {obj.get('kind')}"))
                continue
            for error in jsonschema.Draft202012Validator(schema).iter_errors(obj):
                where = ".".join(map(str, error.absolute_path)) or "(top)"
                out.append(Violation(file, ident, "schema", f"{where}: {error.message}"))
            continue
        try:
            kubernetes_validate.validate(dict(obj), kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.absolute_path)) or "(top)"
            out.append(Violation(file, ident, "schema",
                                 f"Kubernetes {kubernetes_version}: {where}: {exc.message}"))
        except kubernetes_validate.SchemaNotFoundError as exc:
            out.append(Violation(file, ident, "schema", str(exc)))
    return out

"""Manifests on disk: templates in, rendered trees out, and the offline schema checks
(kubernetes-validate for Kubernetes kinds, the vendored upstream CRDs in manifests/crds/ for
every custom kind: Argo CD, Flux, and any other listed there)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from pipelines.adapters.artifacts import new_stage, swap_in, write_text
from pipelines.core import crd
from pipelines.core.policy import Violation
from pipelines.errors import ConfigError

TEMPLATES = "templates"
CRDS = "crds"


def load_templates(manifests: Path) -> dict[str, str]:
    """The manifest templates (*.j2), by path relative to the templates folder."""
    base = manifests / TEMPLATES
    return {
        str(p.relative_to(base)): p.read_text(encoding="utf-8") for p in sorted(base.rglob("*.j2"))
    }


def read_tree(base: Path) -> dict[str, str]:
    """{relative path: text} of the YAML files under ``base`` (empty if it does not exist)."""
    if not base.is_dir():
        return {}
    return {
        str(p.relative_to(base)): p.read_text(encoding="utf-8")
        for p in sorted(base.rglob("*.yaml"))
    }


def replace_trees(trees: Mapping[Path, Mapping[str, str]]) -> None:
    """Make each folder hold exactly its files (objects no longer rendered disappear), all of
    them or none: every folder is written in full beside its place first, and they are swapped
    in only once all are written, so a failure part-way (disk full, a folder not writable, a
    rename refused while swapping) leaves every folder as it was."""
    with contextlib.ExitStack() as cleanup:
        swaps = []
        for base, files in trees.items():
            stage = new_stage(base)
            cleanup.callback(shutil.rmtree, stage, ignore_errors=True)  # gone once swapped in
            for rel, text in files.items():
                write_text(stage / rel, text)
            for d in stage.rglob("*"):
                if d.is_dir():
                    d.chmod(0o755)  # as new_stage's own: rendered files are for others to read
            swaps.append((stage, base))
        swap_in(swaps)


def parse(text: str) -> dict[str, Any]:
    """A YAML document as a mapping; anything else (empty, a list) is an empty mapping."""
    obj = yaml.safe_load(text)
    return obj if isinstance(obj, dict) else {}


# libyaml when present: the CRDs are 1.9 MB of YAML (1.3 s with it, about ten times that without).
_FastSafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CrdLoader(_FastSafeLoader):  # type: ignore[misc]
    """YAML 1.1 reads a plain ``=`` as a ``!!value`` tag (AlertmanagerConfig's enums hold one);
    Kubernetes reads YAML 1.2, where it is the string ``=``."""


_CrdLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


@cache
def crd_index(crds: Path) -> dict[tuple[str, str], str]:
    """{(group, kind): file} of the vendored CRDs (manifests/crds/index.yaml)."""
    path = crds / "index.yaml"
    if not path.is_file():
        return {}
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return {(str(e["group"]), str(e["kind"])): str(e["file"]) for e in entries}


@cache
def load_crd(crds: Path, file: str) -> dict[str, Any]:
    """One vendored CRD, refused when its bytes differ from SHA256SUMS (an edited copy must
    not loosen the checks)."""
    sums: dict[str, str] = {}
    for line in (crds / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        sums[name] = digest
    data = (crds / file).read_bytes()
    if sums.get(file) != hashlib.sha256(data).hexdigest():
        raise ConfigError(
            f"{crds / file}: its sha256 does not match {crds / 'SHA256SUMS'}",
            hint="restore the upstream file unmodified (see manifests/crds/README.md)",
        )
    doc: dict[str, Any] = yaml.load(data, Loader=_CrdLoader)  # noqa: S506 (a safe loader)
    return doc


@cache
def _crd_validator(crds: Path, file: str, api_version: str) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(crd.object_schema(load_crd(crds, file), api_version))


def crd_violations(crds: Path, file: str, ident: str, obj: Mapping[str, Any]) -> list[Violation]:
    """The object checked against its kind's vendored CRD, or a violation saying why not."""
    api_version = str(obj.get("apiVersion", ""))
    group, kind = api_version.rpartition("/")[0], str(obj.get("kind"))
    source = crd_index(crds)[(group, kind)]
    served = crd.served_versions(load_crd(crds, source))
    if api_version not in served:
        return [
            Violation(
                file,
                ident,
                "schema",
                f"{kind} {api_version} is not served by the "
                f"vendored CRD {CRDS}/{source} (served: {', '.join(served)})",
            )
        ]
    errors = _crd_validator(crds, source, api_version).iter_errors(obj)
    return [
        Violation(
            file,
            ident,
            "schema",
            f"{kind} CRD ({CRDS}/{source}): "
            f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}",
        )
        for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    ]


def schema_violations(
    crds: Path, files: Mapping[str, Mapping[str, Any]], kubernetes_version: str
) -> list[Violation]:
    """kubernetes-validate --strict for built-in kinds; the vendored upstream CRD (``crds``:
    a manifests/crds folder) for custom kinds. A kind neither knows is a violation."""
    import kubernetes_validate

    out: list[Violation] = []
    index = crd_index(crds)
    for file, obj in sorted(files.items()):
        ident = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        if (group, str(obj.get("kind"))) in index:
            out += crd_violations(crds, file, ident, obj)
            continue
        try:
            kubernetes_validate.validate(dict(obj), kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.absolute_path)) or "(top)"
            out.append(
                Violation(
                    file,
                    ident,
                    "schema",
                    f"Kubernetes {kubernetes_version}: {where}: {exc.message}",
                )
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            out.append(
                Violation(
                    file,
                    ident,
                    "schema",
                    f"{exc}; a custom kind needs its "
                    f"upstream CRD vendored in manifests/{CRDS}/ (see the README "
                    "there)",
                )
            )
    return out

"""A CycloneDX SBOM of the serving image's Python environment, from pip's installation report.

The report is what pip resolved, offline, from exactly the wheels the image installs, so each
component carries the sha256 of the wheel that went in. The model is listed too, as a
``machine-learning-model`` component with its sha256. Pure: the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

# Serial numbers are derived, not random, so a rebuild of the same inputs is byte-identical.
NAMESPACE = uuid.UUID("6f1d8a52-3b8e-4d1f-9a54-0c1e2b7d9e11")


def _licenses(metadata: dict[str, Any]) -> list[Any]:
    factory = LicenseFactory()
    expression = metadata.get("license_expression")
    if expression:
        return [factory.make_from_string(str(expression))]
    text = str(metadata.get("license") or "").strip()
    # Some packages put the whole license text in this field; only short values name a license.
    if text and len(text) < 80 and "\n" not in text:
        return [factory.make_from_string(text)]
    return []


def _python_component(item: dict[str, Any]) -> Component:
    meta = item["metadata"]
    name, version = str(meta["name"]), str(meta["version"])
    hashes = (item.get("download_info") or {}).get("archive_info", {}).get("hashes", {})
    purl = PackageURL(type="pypi", name=name.lower().replace("_", "-"), version=version)
    return Component(
        type=ComponentType.LIBRARY,
        name=name,
        version=version,
        bom_ref=purl.to_string(),
        purl=purl,
        description=(meta.get("summary") or None),
        licenses=_licenses(meta),
        hashes=[
            HashType(alg=HashAlgorithm.SHA_256, content=h)
            for a, h in sorted(hashes.items())
            if a == "sha256"
        ],
    )


def python_packages(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(normalised name, version) of every package pip's report installs."""
    return sorted(
        (str(i["metadata"]["name"]).lower().replace("_", "-"), str(i["metadata"]["version"]))
        for i in report["install"]
    )


def build(
    report: dict[str, Any],
    *,
    image: str,
    release_id: str,
    model_name: str,
    model_sha256: str,
    created: dt.datetime,
    properties: Iterable[tuple[str, str]] = (),
) -> str:
    """The SBOM as CycloneDX 1.6 JSON."""
    image_ref = f"image:{image}:{release_id}"
    root = Component(
        type=ComponentType.CONTAINER, name=image, version=release_id, bom_ref=image_ref
    )
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=model_name,
        version=release_id,
        bom_ref=f"model:{model_name}:{model_sha256}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=model_sha256)],
    )
    libraries = sorted(
        (_python_component(i) for i in report["install"]),
        key=lambda c: (c.name.lower(), c.version or ""),
    )
    bom = Bom(
        serial_number=uuid.uuid5(NAMESPACE, f"{image}@{release_id}:{model_sha256}"),
        metadata=BomMetaData(
            component=root,
            timestamp=created,
            properties=[Property(name=k, value=v) for k, v in properties],
        ),
        components=[model, *libraries],
    )
    bom.dependencies.add(
        Dependency(
            ref=root.bom_ref, dependencies=[Dependency(ref=c.bom_ref) for c in [model, *libraries]]
        )
    )
    text = str(JsonV1Dot6(bom).output_as_string(indent=2)) + "\n"
    # An SBOM that fails its own schema is worse than none: check before anyone stores it.
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise ValueError(f"the generated SBOM is not valid CycloneDX 1.6: {error}")
    return text


def components(sbom: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, version) of the Python libraries an SBOM lists, normalised as pip names them."""
    return sorted(
        (str(c["name"]).lower().replace("_", "-"), str(c.get("version", "")))
        for c in sbom.get("components", [])
        if c.get("type") == "library"
    )

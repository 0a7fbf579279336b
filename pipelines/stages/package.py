"""package: build the serving image of the blessed model, push it, and record it by digest.

The build is hermetic: the wheels come from the host (pydeps), the base image is pinned by
digest, and the engine builds with the network off. The image's name is its release id, which
hashes every input of the build, so the same inputs are found in the registry and re-used
instead of rebuilt. The model itself is pushed too, as an OCI artifact, so that a later gate
can fetch production's model by digest; and a CycloneDX SBOM is written beside the record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import pipelines
from pipelines.adapters import images, pydeps
from pipelines.adapters.artifacts import (
    PREDICTIONS,
    PROFILE,
    RELEASE,
    SBOM,
    git_commit,
    invalidate,
    sha256_file,
    staged_dir,
    write_text,
)
from pipelines.adapters.datasets import read_table, request_instances
from pipelines.adapters.registry import TFLITE_MEDIA_TYPE, Registry, compressed_size
from pipelines.config import PINNED_IMAGE, Workspace, read_settings
from pipelines.core import render, sbom
from pipelines.errors import ConfigError, InfraError
from pipelines.evidence import (
    ModelProvenance,
    PackagedRelease,
    candidate_artifact,
    made,
    require_blessing,
    require_profile,
    save,
)
from pipelines.serving import contract
from pipelines.serving.features import ImageSchema, TableSchema
from pipelines.serving.reference import PROFILE as SERVED_PROFILE
from pipelines.serving.runtime import MODEL_FILE, REGRESSION, SIGNATURE, Signature

SELF_TEST_EXAMPLES = 5
SERVING_DIR = Path(pipelines.__file__).parent / "serving"


@dataclass(frozen=True)
class PackageResult:
    """The release built: its id, image by digest, model artifact, and whether it was reused."""

    release_id: str
    image: str
    model_artifact: str
    reused: bool
    record: Path


def resolve_base_image(ws: Workspace) -> tuple[str, str]:
    """(image, where it came from): BASE_IMAGE, else the one `make infra-up` built, else
    model.yaml. Always pinned by digest: a tag can move under a release."""
    state = ws.root / ".infra" / "base-image"
    base = read_settings().base_image
    if base:
        image, source = base, "BASE_IMAGE"
    elif state.is_file():
        image, source = state.read_text().strip(), f"{state} (written by `make infra-up`)"
    else:
        image, source = ws.model.serving.base_image, "serving.base_image in model.yaml"
    if not re.match(PINNED_IMAGE, image):
        raise ConfigError(
            f"base image {image!r} from {source} is not pinned by digest",
            hint="use NAME@sha256:<64 hex digits>",
        )
    return image, source


def signature(ws: Workspace, model_sha256: str, profile_sha256: str = "") -> Signature:
    """The serving contract, with self-test examples whose predictions evaluate recorded, and
    the sha256 of the reference profile shipped beside the model (none: the server exports no
    reference gauges). A regressor's self-test predictions are values, a classifier's classes."""
    data = ws.model.data
    schema = data.feature_schema()
    test = read_table(ws.split_path("test"), "test split")
    predicted = pd.read_parquet(ws.artifacts("evaluate") / PREDICTIONS)
    head = test.iloc[:SELF_TEST_EXAMPLES]
    recorded = predicted["predicted"].iloc[:SELF_TEST_EXAMPLES].tolist()
    regressor = ws.model.task == REGRESSION
    image: tuple[tuple[int, int] | None, float | None, float | None] = (None, None, None)
    if isinstance(schema, ImageSchema):
        image = (schema.shape, schema.low, schema.high)
    return Signature(
        model=ws.name,
        feature_names=data.feature_columns,
        image_shape=image[0],
        low=image[1],
        high=image[2],
        classes=data.label.class_list,
        model_sha256=model_sha256,
        # Raw rows as a client sends them (positional, JSON's null for a missing value).
        self_test_instances=request_instances(ws, head, named=False),
        self_test_classes=[] if regressor else [int(v) for v in recorded],
        profile_sha256=profile_sha256,
        features=schema.to_list() if isinstance(schema, TableSchema) else [],
        task=ws.model.task,
        self_test_values=[float(v) for v in recorded] if regressor else [],
    )


def dockerfile() -> bytes:
    """The image's Dockerfile: its template with the serving contract's values filled in."""
    text = (SERVING_DIR / "Dockerfile.j2").read_text(encoding="utf-8")
    template = render.environment({"Dockerfile": text}).get_template("Dockerfile")
    return template.render(serving=contract.template_values()).encode()


def context_files(ws: Workspace, sig: Signature, locked: pydeps.LockedWheels) -> dict[str, bytes]:
    """Every file of the build context but the wheels (which the lock's hashes cover)."""
    files = {
        "Dockerfile": dockerfile(),
        "requirements.txt": locked.requirements.encode(),
        "app/pipelines/__init__.py": (SERVING_DIR.parent / "__init__.py").read_bytes(),
        f"model/{MODEL_FILE}": candidate_artifact(ws).read_bytes(),
        f"model/{SIGNATURE}": sig.to_json().encode(),
    }
    if sig.profile_sha256:
        files[f"model/{SERVED_PROFILE}"] = (ws.artifacts("train") / PROFILE).read_bytes()
    for path in sorted(SERVING_DIR.glob("*.py")):
        files[f"app/pipelines/serving/{path.name}"] = path.read_bytes()
    return files


def build_key(files: dict[str, bytes], base_image: str, arch: str) -> str:
    """sha256 over what decides the image's content. The commit and the time are labels, not
    content: a docs-only commit re-uses the image (and its release) instead of minting a new one."""
    digest = hashlib.sha256(f"{base_image}\n{arch}\n".encode())
    for name in sorted(files):
        digest.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return digest.hexdigest()


def source_url(root: Path) -> str:
    """Where the source lives, for the OCI label; never with credentials in it."""
    env = read_settings()
    if env.github_server_url and env.github_repository:
        return f"{env.github_server_url}/{env.github_repository}"
    if env.ci_project_url:
        return env.ci_project_url
    proc = subprocess.run(
        ["git", "remote", "get-url", "origin"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    url = proc.stdout.strip() if proc.returncode == 0 else ""
    return re.sub(r"://[^/@]+@", "://", url) or "unknown"


def _write_context(target: Path, files: dict[str, bytes], wheels: Path) -> None:
    for name, data in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
    (target / "wheels").mkdir()
    for wheel in wheels.iterdir():
        try:
            os.link(wheel, target / "wheels" / wheel.name)  # no copy of ~50 MB per build
        except OSError:
            shutil.copy2(wheel, target / "wheels" / wheel.name)


def run(ws: Workspace, progress: Callable[[str], None] = print) -> PackageResult:
    """Build and push the serving image of the blessed model; write the release record."""
    final = ws.artifacts("package")
    invalidate(final)  # a failed build or push must not leave the previous release record
    blessing = require_blessing(ws)
    model_sha = blessing.candidate.model_sha256
    base_image, base_source = resolve_base_image(ws)
    registry = Registry()
    registry.check()
    client = images.engine()
    try:
        arch = str(client.info().get("Architecture", "x86_64"))
        progress(f"  base image {base_image} ({base_source})")

        started = time.monotonic()
        locked = pydeps.lock(ws.root, arch)
        profile = require_profile(ws, model_sha)
        profile_sha = sha256_file(ws.artifacts("train") / PROFILE)
        sig = signature(ws, model_sha, profile_sha)
        files = context_files(ws, sig, locked)
        key = build_key(files, base_image, arch)
        release_id = f"{ws.name}-{key[:12]}"
        repo_path = registry.repository(ws.model.deploy.image_repository)
        repository = f"{registry.host}/{repo_path}"
        commit, dirty = git_commit(ws.root)

        digest = registry.manifest_digest(repo_path, release_id)
        reused = digest is not None
        size_bytes: int | None = None
        if digest is None:
            created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
            buildargs = {
                "BASE_IMAGE": base_image,
                "REVISION": commit + ("-dirty" if dirty else ""),
                "SOURCE": source_url(ws.root),
                "CREATED": created,
                "VERSION": release_id,
                "MODEL_NAME": ws.name,
                "MODEL_SHA256": model_sha,
                "RELEASE_ID": release_id,
            }
            progress(f"  building {repository}:{release_id} (network off)")
            with tempfile.TemporaryDirectory(prefix="mlops-build-") as tmp:
                _write_context(Path(tmp), files, locked.directory)
                image_id = images.retried(
                    "image build",
                    lambda: images.build(
                        client, Path(tmp), f"{repository}:{release_id}", buildargs, progress
                    ),
                    progress=progress,
                )
            size_bytes = int(client.images.get(image_id).attrs.get("Size", 0))
            progress(f"  pushing {repository}:{release_id}")
            digest = images.retried(
                "image push", lambda: images.push(client, repository, release_id), progress=progress
            )
        else:
            progress(f"  re-using {repository}:{release_id}: the registry has these exact inputs")
        confirmed = registry.manifest_digest(repo_path, digest)
        if confirmed != digest:
            raise InfraError(
                f"the registry does not serve {repository}@{digest} after the push",
                hint="check the registry's storage and logs",
            )
        compressed = compressed_size(registry.manifest(repo_path, digest))

        model_repo = f"{repo_path}-model"
        model_digest = registry.manifest_digest(model_repo, release_id)
        if model_digest is None:
            model_digest = registry.push_model(
                model_repo,
                release_id,
                {
                    MODEL_FILE: (files[f"model/{MODEL_FILE}"], TFLITE_MEDIA_TYPE),
                    SIGNATURE: (files[f"model/{SIGNATURE}"], "application/json"),
                    SERVED_PROFILE: (files[f"model/{SERVED_PROFILE}"], "application/json"),
                },
                {
                    "org.opencontainers.image.title": ws.name,
                    "io.mlops.release.id": release_id,
                    "io.mlops.model.sha256": model_sha,
                },
            )

        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        image_ref = f"{repository}@{digest}"
        sbom_text = sbom.build(
            locked.report,
            image=repository,
            release_id=release_id,
            model_name=ws.name,
            model_sha256=model_sha,
            created=now,
            properties=[("io.mlops.image.digest", digest), ("io.mlops.base_image", base_image)],
        )
        with staged_dir(final) as out:
            write_text(out / SBOM, sbom_text)
            record = PackagedRelease(
                model=ws.name,
                release_id=release_id,
                image=image_ref,
                image_tag=f"{repository}:{release_id}",
                model_artifact=f"{registry.host}/{model_repo}@{model_digest}",
                model_sha256=model_sha,
                data_md5=blessing.provenance.data_md5,
                source_commit=commit,
                base_image=base_image,
                platform=f"linux/{arch}",
                build_key=key,
                reused=reused,
                size_bytes=size_bytes,
                compressed_size_bytes=compressed,
                packages=len(locked.report["install"]),
                seconds=round(time.monotonic() - started, 2),
                sbom=SBOM,
                sbom_sha256=sha256_file(out / SBOM),
                provenance=made(
                    ModelProvenance,
                    ws.root,
                    ws.model.section_hash("serving", "deploy"),
                    model_sha256=model_sha,
                ),
                profile=profile.summary(profile_sha),
            )
            write_text(out / SIGNATURE, sig.to_json())
            save(out / RELEASE, record)
        return PackageResult(release_id, image_ref, record.model_artifact, reused, final / RELEASE)
    finally:
        # The engine's socket; left to the garbage collector, it warns (ResourceWarning).
        client.close()

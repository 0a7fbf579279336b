"""The serving image's Python dependencies: wheels for the image's platform, downloaded on the
host, locked with their hashes, and pip's installation report (the SBOM's source).

The package list is the ``serving`` extra of this project (pyproject.toml), pinned by
constraints.txt: one source of truth for what the server needs. Downloads are cached in
``$XDG_CACHE_HOME/mlops/wheels`` (~/.cache by default), keyed by everything that decides them,
so only the first build on a machine needs the package index.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from pipelines.config.settings import read_settings
from pipelines.errors import ConfigError, InfraError

PYTHON = "3.11"  # the image's Python: Debian bookworm's python3 and python:3.11-slim
DISTRIBUTION = "mlops-gitops"
# glibc 2.17 (manylinux2014) up to 2.36 (Debian bookworm): the wheels that run on the base.
GLIBC_MINORS = range(17, 37)


@dataclass(frozen=True)
class LockedWheels:
    """Downloaded serving wheels, their hash-pinned requirements, and pip's report of them."""

    directory: Path
    requirements: str  # name==version --hash=sha256:... per line, for pip --require-hashes
    report: dict[str, Any]  # pip's installation report of exactly those wheels


def serving_requirements() -> list[str]:
    """The ``serving`` extra of this project, as requirement strings without the marker."""
    try:
        declared = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"{DISTRIBUTION} is not installed", hint="run `make setup` (pip install -e .)"
        ) from None
    out = []
    for text in declared:
        req = Requirement(text)
        if (
            req.marker is not None
            and req.marker.evaluate({"extra": "serving"})
            and not req.marker.evaluate({"extra": ""})
        ):
            req.marker = None
            out.append(str(req))
    if not out:
        raise ConfigError(
            f"{DISTRIBUTION} declares no `serving` extra",
            hint="pyproject.toml must list the server's packages under serving",
        )
    return sorted(out)


def cache_dir() -> Path:
    """Where downloaded wheels are cached between runs."""
    return read_settings().cache_home / "mlops" / "wheels"


def platform_args(arch: str) -> list[str]:
    """The platform arguments pip downloads an architecture's wheels with; others are refused."""
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
        arch.lower()
    )
    if machine is None:
        raise ConfigError(
            f"unsupported image architecture {arch!r}",
            hint="the serving image is built for x86_64 or aarch64",
        )
    args = ["--platform", f"manylinux2014_{machine}"]
    for minor in GLIBC_MINORS:
        args += ["--platform", f"manylinux_2_{minor}_{machine}"]
    return [
        *args,
        "--only-binary=:all:",
        "--python-version",
        PYTHON,
        "--implementation",
        "cp",
        "--abi",
        f"cp{PYTHON.replace('.', '')}",
    ]


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
        raise InfraError(
            f"{what} failed: {'; '.join(errors[-3:]) or proc.stderr[-500:]}",
            hint="the first build on a machine needs the package index (later "
            f"builds use {cache_dir()}); check network access and constraints.txt",
        )


def lock(root: Path, arch: str) -> LockedWheels:
    """Resolve the serving wheels for an architecture within constraints.txt, cached by input."""
    constraints = root / "constraints.txt"
    if not constraints.is_file():
        raise ConfigError(f"{constraints} is missing", hint="restore it from git")
    reqs = serving_requirements()
    plat = platform_args(arch)
    key = hashlib.sha256(json.dumps([constraints.read_text(), reqs, plat]).encode()).hexdigest()
    cache = cache_dir() / f"{arch}-py{PYTHON}-{key[:16]}"
    if (cache / "report.json").is_file():
        return LockedWheels(
            cache / "wheels",
            (cache / "requirements.txt").read_text(),
            json.loads((cache / "report.json").read_text()),
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".download."))
    try:
        wheels = staging / "wheels"
        _pip(
            ["download", "--quiet", "--dest", str(wheels), "-c", str(constraints), *plat, *reqs],
            "downloading the image's wheels",
        )
        # Resolve again, offline, from those wheels alone: the report is what pip will install.
        _pip(
            [
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--no-index",
                "--find-links",
                str(wheels),
                "--target",
                str(staging / "unused"),
                "--report",
                str(staging / "report.json"),
                "-c",
                str(constraints),
                *plat,
                *reqs,
            ],
            "resolving the image's wheels offline",
        )
        report = json.loads((staging / "report.json").read_text())
        lines = []
        for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
            digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
            lines.append(
                f"{item['metadata']['name']}=={item['metadata']['version']} --hash=sha256:{digest}"
            )
        (staging / "requirements.txt").write_text("\n".join(lines) + "\n")
        if cache.exists():  # another process locked the same set meanwhile: keep theirs
            shutil.rmtree(staging)
        else:
            staging.replace(cache)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return lock(root, arch)

"""Shared fixtures. Integration tests work on a copy of this repository in a temporary folder,
made into its own git repository, so they exercise the real layout without touching ours."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from pipelines.adapters.workers import usable_cpus

ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "mlops-tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "mlops-tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}
os.environ.update(GIT_ENV)
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require(component: str, available: bool, why: str) -> None:
    """Skip when a component is missing, unless CI demands every component (DESIGN.md rule 5)."""
    if available:
        return
    message = f"{component} unavailable: {why}"
    if os.environ.get("MLOPS_REQUIRE_INFRA") == "1":
        pytest.fail(f"{message} (MLOPS_REQUIRE_INFRA=1 forbids skipping)")
    pytest.skip(message)


def copy_repo(dest: Path) -> Path:
    """The committed and uncommitted (not ignored) files of this checkout, as a fresh repo."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "test copy"], cwd=dest, check=True)
    return dest


def edit_model_yaml(root: Path, changes: Mapping[str, object], model: str = "digits") -> None:
    """Set dotted keys (e.g. {"training.epochs": 3}) in a copy's model.yaml."""
    path = root / "models" / model / "model.yaml"
    doc = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


FAST_TRAINING = {"training.epochs": 4}

needs_two_cpus = pytest.mark.skipif(
    usable_cpus() < 2, reason="two training workers need two CPUs; this machine has one"
)


@contextlib.contextmanager
def default_recursion_limit() -> Iterator[None]:
    """Python's default recursion limit (1000), the server's, within a test's body: Hypothesis
    raises the limit while a test runs, which would hide the RecursionErrors the server hits."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def infra_status() -> tuple[bool, str]:
    """(available?, why not): a docker engine, the registry and a pinned base image."""
    import requests

    from pipelines.adapters.registry import Registry
    from pipelines.errors import InfraError

    try:
        import docker

        with contextlib.closing(docker.from_env(timeout=5)) as client:
            client.ping()
    except Exception as exc:  # any failure to reach the engine means "not here"
        return False, f"no docker engine ({type(exc).__name__}); run `make infra-up`"
    try:
        Registry().check()
    except (InfraError, requests.RequestException) as exc:
        return False, f"{exc}"
    if not (os.environ.get("BASE_IMAGE") or (ROOT / ".infra/base-image").is_file()):
        return False, "no base image: run `make infra-up` or set BASE_IMAGE"
    return True, ""


@pytest.fixture(scope="session")
def infra() -> str:
    """The pinned base image to build on; skips (or fails in CI) without the infrastructure."""
    ok, why = infra_status()
    require("docker engine, registry and base image", ok, why)
    return os.environ.get("BASE_IMAGE") or (ROOT / ".infra/base-image").read_text().strip()


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy taken through ingest, validate, train (few epochs) and evaluate once.
    Tests that change things work on their own copy of it (see ``workspace``)."""
    from pipelines.config import load_model
    from pipelines.stages import evaluate, ingest, train, validate

    root = copy_repo(tmp_path_factory.mktemp("prepared"))
    edit_model_yaml(root, FAST_TRAINING)
    ws = load_model(root, "digits")
    ingest.run(ws)
    validate.run(ws)
    train.run(ws)
    evaluate.run(ws)
    return root


@pytest.fixture
def workspace(prepared: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(prepared, dest, symlinks=True)
    return dest


def postgres_status() -> tuple[str, str]:
    """(DSN, why not): the PostgreSQL `scripts/infra.sh postgres` started, if it answers."""
    dsn_file = ROOT / ".infra/postgres/dsn"
    try:
        dsn = dsn_file.read_text().strip()
    except OSError as exc:
        return "", f"no {dsn_file} ({type(exc).__name__}): run `scripts/infra.sh postgres`"
    import psycopg

    try:
        # psycopg takes libpq's URL form: without SQLAlchemy's "+psycopg" driver name.
        with psycopg.connect(dsn.replace("+psycopg", ""), connect_timeout=5):
            pass
    except psycopg.Error as exc:
        return "", f"PostgreSQL does not answer ({type(exc).__name__}): `scripts/infra.sh postgres`"
    return dsn, ""


@pytest.fixture
def postgres() -> str:
    """The local PostgreSQL's DSN, its Optuna studies deleted first (a test's study name is
    its space's hash: an earlier run's trials would count as this run's)."""
    dsn, why = postgres_status()
    require("PostgreSQL", bool(dsn), why)
    import optuna

    storage = optuna.storages.RDBStorage(dsn)
    for study in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=study, storage=storage)
    storage.remove_session()
    storage.engine.dispose()  # its pooled connection would otherwise stay open until GC
    return dsn

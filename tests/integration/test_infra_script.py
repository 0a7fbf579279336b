"""scripts/infra.sh on a machine whose registry has never seen the base image: the state CI's
fresh machines start in. It must go on to build the base, not stop at the registry's 404."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_repo, require
from tests.util import free_port

pytestmark = pytest.mark.infra


def test_an_empty_registry_leads_to_building_the_base_image(infra: str, tmp_path: Path) -> None:
    can_root = os.geteuid() == 0 or (
        shutil.which("sudo") is not None
        and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    )
    require("root or passwordless sudo", can_root, "infra.sh builds the base image as root")
    root = copy_repo(tmp_path / "repo")
    port = free_port()
    # A base recorded by an earlier run that this registry does not hold, as after a reset.
    (root / ".infra").mkdir()
    (root / ".infra/base-image").write_text(
        f"127.0.0.1:{port}/mlops/python-base@sha256:{'0' * 64}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("BASE_IMAGE", "REGISTRY")}
    # An unreachable mirror makes debootstrap, the step after both registry look-ups, fail fast.
    env |= {"REGISTRY": f"127.0.0.1:{port}", "MLOPS_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}
    try:
        up = subprocess.run(
            ["scripts/infra.sh", "up"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run(
            ["scripts/infra.sh", "down"], cwd=root, env=env, capture_output=True, timeout=120
        )
    assert f"registry: started on 127.0.0.1:{port}" in up.stdout
    assert "base image: debootstrap bookworm" in up.stdout, up.stdout + up.stderr
    assert up.returncode == 3, up.stdout + up.stderr
    assert "debootstrap failed" in up.stderr


def test_postgres_up_again_is_a_no_op_that_prints_the_same_dsn() -> None:
    """`infra.sh postgres` on a running cluster starts nothing and prints its DSN again; the
    DSN reaches the database as the non-superuser `mlops`, on 127.0.0.1 only."""
    from tests.conftest import ROOT, postgres_status

    dsn, why = postgres_status()
    require("PostgreSQL", bool(dsn), why)
    again = subprocess.run(
        ["scripts/infra.sh", "postgres"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "postgres: up on 127.0.0.1:" in again.stdout
    assert "initdb" not in again.stdout
    assert again.stdout.strip().splitlines()[-1] == dsn
    assert dsn.startswith("postgresql+psycopg://mlops:")
    assert "@127.0.0.1:" in dsn
    status = subprocess.run(
        ["scripts/infra.sh", "status"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "postgres: up on 127.0.0.1:" in status.stdout


def test_infra_up_logs_the_dsn_with_its_password_masked() -> None:
    """`infra.sh up` runs in CI's log: the DSN's password stays in .infra/postgres/dsn."""
    from tests.conftest import ROOT, postgres_status

    dsn, why = postgres_status()
    require("PostgreSQL", bool(dsn), why)
    password = dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    up = subprocess.run(
        ["scripts/infra.sh", "up", "--if-possible"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    assert "postgres DSN in .infra/postgres/dsn: postgresql+psycopg://mlops:***@" in up.stdout
    assert password not in up.stdout + up.stderr

"""scripts/tools-image.sh refuses bad settings before it touches Docker: exit 2, a clear
message, nothing built. (Building and running the image: tests/integration/test_tools_image.py.)"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import ROOT

BASE = "127.0.0.1:5000/mlops/python-base@sha256:" + "0" * 64


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with ``env`` over a clean set of its variables."""
    clean = {k: v for k, v in os.environ.items() if k not in {"REGISTRY", "TOOLS_REPOSITORY"}}
    return subprocess.run(
        [str(ROOT / "scripts/tools-image.sh"), *args],
        env={**clean, "BASE_IMAGE": BASE, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--push-everywhere"], {}, "unknown argument: --push-everywhere"),
        ([], {"REGISTRY": "127.0.0.1:5000; rm -rf /"}, "REGISTRY must be host[:port]"),
        ([], {"TOOLS_REPOSITORY": "../Tools"}, "TOOLS_REPOSITORY must be"),
        ([], {"BASE_IMAGE": "python:3.11-slim"}, "BASE_IMAGE must be pinned by digest"),
        ([], {"BASE_IMAGE": BASE + "$(id)"}, "BASE_IMAGE must be pinned by digest"),
    ],
)
def test_bad_settings_exit_2_with_the_reason(
    args: list[str], env: dict[str, str], message: str
) -> None:
    proc = run(*args, **env)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""  # no image reference for gitops.yaml


def test_help_says_what_it_prints_and_exits_0() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    assert "guard.image" in proc.stdout
    assert "--no-push" in proc.stdout

"""Capacity on real git: `mlops capacity` reads the GitOps repository's state, and release and
promote refuse a change whose peak does not fit the node pool, before anything is pushed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pipelines.config import load_model
from pipelines.errors import CheckFailed
from pipelines.stages import promote
from tests.conftest import copy_repo
from tests.integration.test_gitops import (
    QUIET,
    commits,
    evidence,
    git,
    main_in,
    release,
    remote,
    state,
)
from tests.unit.core.test_bluegreen import record


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


# One color of digits at its HPA maximum (6) plus the rolling update's surge (1): 7 pods of
# 100m and 128Mi, 500m and 256Mi limits; the smoke Job 50m/64Mi, limits 200m/128Mi.
ONE_NODE = """node_pool:
  cpu: "1"
  memory: 2Gi
  nodes: 1
  limits_overcommit: 5.0"""


def set_pool(root: Path, env: str, pool: str) -> None:
    """The template's node pool for ``env``: what the GitOps repository is seeded with."""
    path = root / "manifests/environments" / f"{env}.yaml"
    text = re.sub(r"node_pool:\n(  .*\n)+", pool + "\n", path.read_text())
    assert pool in text
    path.write_text(text)


def test_a_release_whose_peak_does_not_fit_is_refused_with_the_plan_and_nothing_pushed(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_pool(root, "staging", ONE_NODE)
    release(root, 1)  # one color: 750m of requests on a 1-CPU node
    assert main_in(root, "capacity", "--env", "staging") == 0
    out = capsys.readouterr().out
    assert "| node-0 | digits-blue/7 " in out
    assert "8 pods at peak request 750m CPU and 960Mi: 1 node(s) of 1 CPU, 2Gi (minimum)" in out
    assert "the pool has 1: fits" in out

    before = commits(root)
    # The next release keeps the first warm in blue: both colors at peak, 1450m.
    with pytest.raises(CheckFailed) as exc:
        release(root, 2)
    message = str(exc.value)
    assert "the peak does not fit the node pool" in message
    assert "2 node(s) of 1 CPU, 2Gi (minimum); the pool has 1: DOES NOT FIT" in message
    assert "| node-1 (missing) | digits-" in message
    assert "nothing was committed" in message
    assert commits(root) == before
    assert state(root, "staging")["models"]["digits"]["active"] == "blue"  # type: ignore[index]


def test_a_promotion_whose_peak_does_not_fit_the_target_is_refused_before_any_branch(
    root: Path,
) -> None:
    set_pool(root, "production", ONE_NODE.replace('cpu: "1"', "cpu: 500m"))
    release(root, 1)
    evidence(root, record(1))
    before = commits(root)
    with pytest.raises(CheckFailed, match="the pool has 1: DOES NOT FIT"):
        promote.run(load_model(root, "digits"), "production", "staging", **QUIET)
    assert commits(root) == before
    assert "promote/" not in git(remote(root), "branch", "--list")
    assert not (root / ".infra/pull-requests/index.json").exists()


def test_capacity_exits_1_with_the_plan_when_the_pool_shrank(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reviewed commit on the GitOps branch shrinks the pool under what already runs."""
    set_pool(root, "staging", ONE_NODE)
    release(root, 1)
    work = tmp_path / "edit"
    subprocess.run(["git", "clone", "-q", str(remote(root)), str(work)], check=True)
    path = work / "manifests/environments/staging.yaml"
    path.write_text(path.read_text().replace("cpu: '1'", "cpu: 400m"))
    git(work, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "smaller nodes")
    git(work, "push", "-q", "origin", "main")
    capsys.readouterr()
    assert main_in(root, "capacity", "--env", "staging") == 1
    out = capsys.readouterr().out
    assert "2 node(s) of 400m CPU, 2Gi (minimum); the pool has 1: DOES NOT FIT" in out
    assert "| node-1 (missing) |" in out


def test_capacity_refuses_bad_input_with_exit_2(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "capacity", "--env", "nowhere") == 2
    assert "unknown environment 'nowhere'" in capsys.readouterr().err
    set_pool(root, "staging", "node_pool:\n  cpu: 4\n  memory: 16Gi\n  nodes: 0")
    assert main_in(root, "capacity", "--env", "staging") == 2
    err = capsys.readouterr().err
    assert "nodes must be between 1 and 10000, not 0" in err
    assert "staging.yaml" in err


def test_the_seeded_environments_fit_and_render_their_quota(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "capacity", "--env", "production") == 0
    assert "0 pods at peak" in capsys.readouterr().out
    quota = (root / "manifests/rendered/production/resourcequota-mlops-production.yaml").read_text()
    assert "requests.cpu: '12'" in quota
    assert "requests.memory: 48Gi" in quota

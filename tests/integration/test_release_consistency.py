"""A human edit of an environment's namespace that lands while a release, promotion or rollback
is in flight: what lands after it is consistent, controller objects included (`mlops render
--check` on the new tip is clean). Real git, a bare remote in a temporary folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.adapters import gitops
from pipelines.config import load_gitops, load_model
from pipelines.stages import render, rollback
from pipelines.stages.release import publish
from tests.conftest import copy_repo
from tests.unit.core.test_bluegreen import record

QUIET = {"progress": lambda _: None}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def human_edit(root: Path, env: str, namespace: str, tmp: Path) -> None:
    """Someone edits environments/<env>.yaml by hand (no re-render) and pushes it."""
    work = tmp / f"human-{env}"
    git(tmp, "clone", "--quiet", str(root / ".infra" / "gitops.git"), str(work))
    path = work / "manifests" / "environments" / f"{env}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["namespace"] = namespace
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(work, "commit", "--quiet", "-am", f"{env}: move to namespace {namespace}")
    git(work, "push", "--quiet", "origin", "HEAD:main")


def edit_during_next_push(monkeypatch: pytest.MonkeyPatch, root: Path, env: str,
                          namespace: str, tmp: Path) -> None:
    """The edit lands between the operation's clone and its first push to main."""
    real_push = gitops.Checkout.push
    done: list[bool] = []

    def push(self: gitops.Checkout, branch: str, *args: Any, **kwargs: Any) -> Any:
        if not done and branch == "main":
            done.append(True)
            human_edit(root, env, namespace, tmp)
        return real_push(self, branch, *args, **kwargs)

    monkeypatch.setattr(gitops.Checkout, "push", push)


def assert_render_check_clean(root: Path) -> dict[str, str]:
    """`mlops render --check` against the tip: every owned file is what the states render."""
    cfg = load_gitops(root)
    with gitops.checkout(cfg, root) as repo:
        rendering = render.render_with(root, repo.manifests, cfg)
        assert rendering.violations == []
        assert render.stale_diff(repo.manifests, rendering.files) == ""
        return render.on_disk(repo.manifests)


def subjects(root: Path) -> list[str]:
    return git(root / ".infra" / "gitops.git", "log", "--reverse", "--format=%s",
               "main").splitlines()


@pytest.mark.parametrize("edited", ["staging", "production"])
def test_a_namespace_edit_during_a_release_leaves_the_tip_consistent(
        root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str) -> None:
    ws = load_model(root, "digits")
    publish(root, ws, "staging", record(1), **QUIET)  # seeds the remote
    edit_during_next_push(monkeypatch, root, edited, f"team-{edited}", tmp_path)
    assert publish(root, ws, "staging", record(2), **QUIET).commit is not None
    assert subjects(root)[-2:] == [f"{edited}: move to namespace team-{edited}",
                                   "release(staging): digits digits-000000000002 to green"]
    files = assert_render_check_clean(root)
    app = yaml.safe_load(files[f"controllers/argocd/application-mlops-{edited}.yaml"])
    assert app["spec"]["destination"]["namespace"] == f"team-{edited}"
    project = yaml.safe_load(files["controllers/argocd/appproject-mlops.yaml"])
    assert f"team-{edited}" in [d["namespace"] for d in project["spec"]["destinations"]]
    assert f"rendered/{edited}/namespace-team-{edited}.yaml" in files


def test_a_namespace_edit_during_a_rollback_leaves_the_tip_consistent(
        root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = load_model(root, "digits")
    publish(root, ws, "staging", record(1), **QUIET)
    publish(root, ws, "staging", record(2), **QUIET)
    edit_during_next_push(monkeypatch, root, "production", "team-production", tmp_path)
    rollback.run(ws, "staging", **QUIET)
    assert subjects(root)[-2][:len("production: move")] == "production: move"
    assert subjects(root)[-1].startswith("rollback(staging)")
    files = assert_render_check_clean(root)
    flux = yaml.safe_load(files["controllers/flux/kustomization-mlops-production.yaml"])
    assert flux["spec"]["path"] == "./manifests/rendered/production"
    app = yaml.safe_load(files["controllers/argocd/application-mlops-production.yaml"])
    assert app["spec"]["destination"]["namespace"] == "team-production"

"""A human edit of an environment's namespace that lands while a release, promotion or rollback
is in flight: what lands after it is consistent, controller objects included (`mlops render
--check` on the new tip is clean), and a change to one environment never renders another.
Real git, a bare remote in a temporary folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.adapters import gitops
from pipelines.adapters import rendering as render
from pipelines.config import load_gitops, load_model
from pipelines.errors import CheckFailed
from pipelines.stages import rollback
from pipelines.stages.release import publish
from tests.conftest import copy_repo
from tests.unit.core.test_bluegreen import record

QUIET: dict[str, Any] = {"progress": lambda _: None}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    ).stdout


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


def edit_during_next_push(
    monkeypatch: pytest.MonkeyPatch, root: Path, env: str, namespace: str, tmp: Path
) -> None:
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
    return git(
        root / ".infra" / "gitops.git", "log", "--reverse", "--format=%s", "main"
    ).splitlines()


def test_a_namespace_edit_during_a_release_leaves_the_tip_consistent(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = load_model(root, "digits")
    publish(root, ws, "staging", record(1), **QUIET)  # seeds the remote
    edit_during_next_push(monkeypatch, root, "staging", "team-staging", tmp_path)
    assert publish(root, ws, "staging", record(2), **QUIET).commit is not None
    assert subjects(root)[-2:] == [
        "staging: move to namespace team-staging",
        "release(staging): digits digits-000000000002 to green",
    ]
    files = assert_render_check_clean(root)
    app = yaml.safe_load(files["controllers/argocd/application-mlops-staging.yaml"])
    assert app["spec"]["destination"]["namespace"] == "team-staging"
    project = yaml.safe_load(files["controllers/argocd/appproject-mlops.yaml"])
    assert "team-staging" in [d["namespace"] for d in project["spec"]["destinations"]]
    assert "rendered/staging/namespace-team-staging.yaml" in files


def test_an_unrendered_edit_of_another_environment_is_refused_not_rendered(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staging release does not render production: not the hand edit of its namespace
    (that is production's change, to review as such), and not beside it either (the controller
    objects would send production's Application to a namespace its objects are not in)."""
    ws = load_model(root, "digits")
    publish(root, ws, "staging", record(1), **QUIET)
    edit_during_next_push(monkeypatch, root, "production", "team-production", tmp_path)
    with pytest.raises(CheckFailed, match=r"environments/production.yaml .* without rendering"):
        publish(root, ws, "staging", record(2), **QUIET)
    assert subjects(root)[-1] == "production: move to namespace team-production"


def test_a_rollback_refuses_an_unrendered_edit_of_another_environment(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = load_model(root, "digits")
    publish(root, ws, "staging", record(1), **QUIET)
    publish(root, ws, "staging", record(2), **QUIET)
    edit_during_next_push(monkeypatch, root, "production", "team-production", tmp_path)
    with pytest.raises(CheckFailed, match="rendered/production/"):
        rollback.run(ws, "staging", **QUIET)
    assert subjects(root)[-1] == "production: move to namespace team-production"


def test_a_staging_release_with_new_templates_leaves_production_as_it_is(
    root: Path, tmp_path: Path
) -> None:
    """Templates changed by a merge reach production only through its promotion request."""
    ws = load_model(root, "digits")
    publish(root, ws, "staging", record(1), **QUIET)
    before = remote_files(root)
    template = root / "manifests" / "templates" / "namespace.yaml.j2"  # every environment's
    template.write_text(
        template.read_text().replace("  labels:\n", "  labels:\n    tier: serving\n", 1)
    )
    publish(root, ws, "staging", record(2), **QUIET)
    after = remote_files(root)
    production = [p for p in before if p.startswith("rendered/production/")]
    assert production
    assert {p: after.get(p) for p in production} == {p: before[p] for p in production}
    assert {p for p in after if p.startswith("rendered/production/")} == set(production)
    assert any(
        "tier: serving" in text for p, text in after.items() if p.startswith("rendered/staging/")
    )


def remote_files(root: Path) -> dict[str, str]:
    cfg = load_gitops(root)
    with gitops.checkout(cfg, root) as repo:
        return render.on_disk(repo.manifests)

"""`mlops configure` on a fork: the repository cloned into a temporary folder as a team would,
configured for GitHub and for GitLab, re-run (nothing changes), re-rendered and checked; bad
values write nothing; and a release to a GitOps remote other than the embedded default is
refused while the template's placeholders remain, and lands once the fork is configured."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.adapters.artifacts import write_text
from pipelines.cli import main
from pipelines.config import load_model
from pipelines.errors import ConfigError
from pipelines.stages.release import publish
from tests.conftest import copy_repo
from tests.unit.core.test_bluegreen import record

QUIET = {"progress": lambda _: None}
REPO_URL = "https://github.com/acme/gitops.git"


@pytest.fixture
def fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of this repository, as a fork starts: `git clone` of the template."""
    template = copy_repo(tmp_path / "template")
    subprocess.run(
        ["git", "clone", "-q", str(template), str(tmp_path / "fork")], check=True, cwd=tmp_path
    )
    for var in ("MLOPS_GITOPS_REPO_URL", "MLOPS_GITOPS_REMOTE", "REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path / "fork")
    return tmp_path / "fork"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def status(repo: Path) -> str:
    return git(repo, "status", "--porcelain", "--untracked-files=all")


def controllers_urls(root: Path) -> set[str]:
    folder = root / "manifests" / "controllers"
    argo = yaml.safe_load((folder / "argocd" / "appproject-mlops.yaml").read_text())
    flux = yaml.safe_load((folder / "flux" / "gitrepository-mlops-gitops.yaml").read_text())
    apps = [
        yaml.safe_load(p.read_text())["spec"]["source"]["repoURL"]
        for p in (folder / "argocd").glob("application-*.yaml")
    ]
    return {*argo["spec"]["sourceRepos"], flux["spec"]["url"], *apps}


@pytest.mark.parametrize(
    ("provider", "repo_url", "registry", "owners", "codeowners"),
    [
        ("github", REPO_URL, "ghcr.io/acme", ["@acme/ml-platform", "@alice"], ".github/CODEOWNERS"),
        (
            "gitlab",
            "ssh://git@gitlab.acme.example/acme/gitops.git",
            "registry.gitlab.acme.example/acme/ml",
            ["@acme/ml/platform"],
            ".gitlab/CODEOWNERS",
        ),
    ],
)
def test_configure_a_fork_then_again_changes_nothing(
    fork: Path,
    capsys: pytest.CaptureFixture[str],
    provider: str,
    repo_url: str,
    registry: str,
    owners: list[str],
    codeowners: str,
) -> None:
    args = ["configure", "--repo-url", repo_url, "--registry", registry, "--owners", *owners]
    assert main([*args, "--provider", provider]) == 0
    out = capsys.readouterr().out
    assert f"changed {codeowners}" in out
    assert "changed manifests/gitops.yaml" in out
    gitops = yaml.safe_load((fork / "manifests" / "gitops.yaml").read_text())
    assert (gitops["repo_url"], gitops["registry"]) == (repo_url, registry)
    assert controllers_urls(fork) == {repo_url}
    for rel in {".github/CODEOWNERS", codeowners}:  # GitHub's copy is kept current too
        lines = (fork / rel).read_text().splitlines()
        assert f"/manifests/environments/production.yaml {' '.join(owners)}" in lines
        assert f"/manifests/rendered/production/ {' '.join(owners)}" in lines
    assert "your-org" not in (fork / ".github" / "CODEOWNERS").read_text()

    git(fork, "add", "-A")
    git(fork, "commit", "-q", "-m", "configure")
    assert main([*args, "--provider", provider]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert status(fork) == ""
    assert main(["render", "--check"]) == 0
    assert main(["lint-manifests"]) == 0


def test_other_values_replace_the_earlier_ones(fork: Path) -> None:
    base = ["configure", "--registry", "ghcr.io/acme"]
    assert main([*base, "--repo-url", REPO_URL, "--owners", "@acme/a"]) == 0
    other = "https://github.com/acme/other.git"
    assert main([*base, "--repo-url", other, "--owners", "@acme/b"]) == 0
    assert controllers_urls(fork) == {other}
    text = (fork / ".github" / "CODEOWNERS").read_text()
    assert "@acme/b" in text
    assert "@acme/a" not in text


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--repo-url", "git@github.com:acme/gitops.git"], "--repo-url"),
        (["--repo-url", "https://tok:secret@github.com/acme/gitops.git"], "--repo-url"),
        (["--registry", "acme"], "--registry 'acme'"),
        (["--registry", "ghcr.io/acme$(id)"], "--registry"),
        (["--owners", "acme/team"], "--owners acme/team"),
        (["--owners", "@your-org/ml-platform"], "--owners"),
        (["--repo-url", "https://git.acme.example/gitops.git"], "pass --provider"),
    ],
)
def test_a_bad_value_exits_2_and_writes_nothing(
    fork: Path, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    values = {"--repo-url": REPO_URL, "--registry": "ghcr.io/acme", "--owners": "@acme/ml"}
    values.update(dict(zip(args[::2], args[1::2], strict=True)))
    assert main(["configure", *[x for kv in values.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert "nothing was written" in err
    assert status(fork) == ""


def test_an_unknown_provider_is_a_usage_error(fork: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "configure",
                "--repo-url",
                REPO_URL,
                "--registry",
                "r.io",
                "--owners",
                "@a",
                "--provider",
                "bitbucket",
            ]
        )
    assert exc.value.code == 2
    assert status(fork) == ""


def test_a_codeowners_that_leads_outside_the_repository_is_refused(
    fork: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = tmp_path / "outside"
    sentinel.write_text("keep\n")
    (fork / ".github" / "CODEOWNERS").unlink()
    (fork / ".github" / "CODEOWNERS").symlink_to(sentinel)
    git(fork, "add", "-A")
    git(fork, "commit", "-q", "-m", "symlink")
    assert main(["configure", "--repo-url", REPO_URL, "--registry", "r.io", "--owners", "@a"]) == 2
    assert ".github/CODEOWNERS" in capsys.readouterr().err
    assert sentinel.read_text() == "keep\n"
    assert status(fork) == ""


def tree_hash(root: Path) -> str:
    """Every file's path and bytes but git's own (a symlink as its target): what a failed
    configure must leave as it was."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".git" or not (path.is_file() or path.is_symlink()):
            continue
        digest.update(str(rel).encode())
        digest.update(str(path.readlink()).encode() if path.is_symlink() else path.read_bytes())
    return digest.hexdigest()


def test_a_rendered_folder_that_leads_outside_writes_nothing(
    fork: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flux = fork / "manifests" / "controllers" / "flux"
    outside = tmp_path / "flux"
    shutil.copytree(flux, outside)
    shutil.rmtree(flux)
    flux.symlink_to(outside)
    before, outside_before = tree_hash(fork), tree_hash(outside)
    assert main(["configure", "--repo-url", REPO_URL, "--registry", "r.io", "--owners", "@a"]) == 2
    assert "resolves to" in capsys.readouterr().err
    assert tree_hash(fork) == before
    assert tree_hash(outside) == outside_before


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (
            lambda fork: (fork / ".gitlab" / "CODEOWNERS" / "README").parent.mkdir(parents=True),
            ".gitlab/CODEOWNERS cannot be written: .gitlab/CODEOWNERS is not a regular file",
        ),
        (
            lambda fork: (fork / ".gitlab").write_text("a file\n"),
            ".gitlab/CODEOWNERS cannot be written: .gitlab is a file, not a folder",
        ),
    ],
    ids=["a folder where CODEOWNERS goes", "a file where its folder goes"],
)
def test_a_codeowners_path_that_cannot_hold_a_file_is_refused_before_any_write(
    fork: Path, capsys: pytest.CaptureFixture[str], make: Any, error: str
) -> None:
    make(fork)
    before = tree_hash(fork)
    args = ["--repo-url", REPO_URL, "--registry", "r.io", "--owners", "@a", "--provider", "gitlab"]
    assert main(["configure", *args]) == 2
    err = capsys.readouterr().err
    assert error in err
    assert "nothing was written" in err
    assert tree_hash(fork) == before


def test_a_write_that_fails_puts_back_the_others(
    fork: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GitLab's CODEOWNERS is written after the rendered folders, gitops.yaml and GitHub's
    # CODEOWNERS; a disk that fills up there (injected: nothing else fails on demand) must
    # leave all of them as they were.
    from pipelines.stages import configure

    def full_disk(path: Path, text: str) -> None:
        if path.name == "CODEOWNERS" and path.parent.name == ".gitlab":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write_text(path, text)

    monkeypatch.setattr(configure, "write_text", full_disk)
    before = tree_hash(fork)
    args = ["--repo-url", REPO_URL, "--registry", "r.io", "--owners", "@a", "--provider", "gitlab"]
    assert main(["configure", *args]) == 3
    err = capsys.readouterr().err
    assert "CODEOWNERS: No space left on device" in err
    assert "put back" in err
    assert tree_hash(fork) == before


def test_a_release_to_another_remote_is_refused_until_configured(
    fork: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = load_model(fork, "digits")
    # The embedded default takes the template as it is: `make run` on a fresh clone.
    assert publish(fork, ws, "staging", record(1), **QUIET).commit
    other = tmp_path / "gitops-elsewhere.git"
    git(tmp_path, "clone", "-q", "--bare", str(fork / ".infra" / "gitops.git"), str(other))
    tip = git(other, "rev-parse", "main")
    monkeypatch.setenv("MLOPS_GITOPS_REMOTE", str(other))

    with pytest.raises(ConfigError) as err:
        publish(fork, ws, "staging", record(2), **QUIET)
    assert err.value.exit_code == 2
    message = f"{err.value} {err.value.hint}"
    assert "mlops configure" in message
    assert "controllers/argocd/appproject-mlops.yaml" in message
    assert "your-org" in message
    assert git(other, "rev-parse", "main") == tip  # nothing pushed
    assert git(other, "branch", "--list").split() == ["*", "main"]

    assert main(["configure", "--repo-url", REPO_URL, "--registry", "r.io", "--owners", "@a"]) == 0
    assert publish(fork, ws, "staging", record(2), **QUIET).commit
    assert git(other, "rev-parse", "main") != tip
    pushed = git(other, "show", "main:manifests/controllers/flux/gitrepository-mlops-gitops.yaml")
    assert REPO_URL in pushed


def test_the_configured_registry_is_used_unless_registry_is_set(
    fork: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.adapters.registry import registry_host

    assert registry_host() == "127.0.0.1:5000"  # the template: the local registry
    assert (
        main(["configure", "--repo-url", REPO_URL, "--registry", "ghcr.io/acme", "--owners", "@a"])
        == 0
    )
    assert registry_host() == "ghcr.io/acme"
    monkeypatch.setenv("REGISTRY", "127.0.0.1:5000")  # e.g. a local run of a configured fork
    assert registry_host() == "127.0.0.1:5000"


def test_mlops_run_refuses_an_unconfigured_fork_before_any_stage(
    fork: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "gitops-elsewhere.git"
    git(tmp_path, "init", "-q", "--bare", str(other))
    monkeypatch.setenv("MLOPS_GITOPS_REMOTE", str(other))
    assert main(["run", "--until", "release"]) == 2
    err = capsys.readouterr().err
    assert "repo_url: https://github.com/your-org/your-gitops-repo.git" in err
    assert "mlops configure" in err
    assert not (fork / "artifacts").exists()
    assert status(fork) == ""


def test_a_checkout_of_another_remote_refuses_to_commit_a_placeholder(tmp_path: Path) -> None:
    """The one place every GitOps commit goes through (release, promotion and rollback
    requests, the guard): nothing is staged or committed while a placeholder is there."""
    from pipelines.adapters import gitops
    from pipelines.config import GitOpsConfig

    work = tmp_path / "work"
    (work / "manifests" / "controllers").mkdir(parents=True)
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "manifests" / "controllers" / "x.yaml").write_text(f"url: {REPO_URL}\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "seed")
    (work / "manifests" / "controllers" / "y.yaml").write_text(
        "url: https://github.com/your-org/your-gitops-repo.git\n"
    )
    checkout = gitops.Checkout(work, GitOpsConfig(), "https://git.example/ops.git")
    with pytest.raises(ConfigError, match=r"manifests/controllers/y\.yaml:1: url: "):
        checkout.commit("release")
    assert git(work, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(work, "diff", "--cached", "--name-only") == ""
    allowed = gitops.Checkout(work, GitOpsConfig(), "x", placeholders_allowed=True)
    assert allowed.commit("the embedded default takes it") is not None

"""Nothing is written or deleted outside the repository: names are checked against allow-lists
(environments: manifests/environments/, models: models/), paths must resolve inside the
repository (or the GitOps checkout). Every test keeps a sentinel folder outside and checks that
it survives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.adapters import gitops
from pipelines.adapters import rendering as stage
from pipelines.adapters.releasing import apply_state
from pipelines.cli import main
from pipelines.config import load_gitops, load_model
from pipelines.errors import ConfigError
from tests.conftest import edit_model_yaml

ROOT = Path(__file__).resolve().parents[2]
BAD_ENVS = [
    "../../x",
    "../../../x",
    "nope",
    "./production",
    "production/",
    "Production",
    "production/../staging",
    ".",
    "..",
    "/tmp",
    "staging ",
    "staging;id",
    "staging\n",
]
BAD_MODELS = ["../digits", "digits/", "./digits", "Digits", "nope", "models/digits", ".."]
ENV_COMMANDS = [
    ["render", "--env"],
    ["render", "--check", "--env"],
    ["release", "--env"],
    ["rollback", "--env"],
    ["rollback", "--merge", "--env"],
    ["status", "--env"],
    ["promote", "--to"],
    ["promote", "--from"],
    ["promote", "--merge", "--to"],
]
MODEL_COMMANDS = [
    ["config"],
    ["ingest"],
    ["train"],
    ["gate"],
    ["release"],
    ["status"],
    ["report"],
    ["run"],
]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the repository copy, with a file that must survive."""
    sentinel = tmp_path / "x"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("precious\n")
    return sentinel


def survives(sentinel: Path) -> bool:
    return (sentinel / "keep.txt").read_text() == "precious\n" and [
        p.name for p in sentinel.iterdir()
    ] == ["keep.txt"]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root (manifests, models) two levels below tmp_path, the working folder."""
    root = tmp_path / "work" / "repo"
    for rel in ("manifests", "models"):
        shutil.copytree(ROOT / rel, root / rel)
    (root / "pyproject.toml").write_text("")
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize("command", ENV_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("env", BAD_ENVS)
def test_every_env_option_refuses_unknown_and_aliased_names(
    repo: Path, outside: Path, command: list[str], env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, env]) == 2
    assert "known environments: production, staging" in capsys.readouterr().err
    assert survives(outside)


@pytest.mark.parametrize("command", MODEL_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("model", BAD_MODELS)
def test_every_model_option_refuses_unknown_and_aliased_names(
    repo: Path, command: list[str], model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--model", model]) == 2
    assert "known models: diabetes, digits" in capsys.readouterr().err


@pytest.mark.parametrize("env", ["../../x", "../../../x", "../../../../x"])
@pytest.mark.parametrize("check", [[], ["--check"]])
def test_render_env_cannot_reach_outside(
    repo: Path, outside: Path, env: str, check: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = stage.on_disk(repo / "manifests")
    assert main(["render", *check, "--env", env]) == 2
    assert survives(outside)
    assert stage.on_disk(repo / "manifests") == before
    assert "0 files" not in capsys.readouterr().out


def test_render_write_refuses_a_path_or_an_environment_that_rendered_nothing(
    repo: Path, outside: Path
) -> None:
    rendering = stage.render_with(repo, repo / "manifests", load_gitops(repo, env={}))
    for env in ("../../../x", "nope"):
        with pytest.raises(ConfigError):
            stage.write(repo / "manifests", rendering.files, env)
        with pytest.raises(ConfigError):
            stage.stale_diff(repo / "manifests", rendering.files, env)
    assert survives(outside)


def test_a_symlinked_rendered_folder_is_not_followed_outside(repo: Path, outside: Path) -> None:
    (outside / "staging").mkdir()
    (outside / "staging" / "keep.txt").write_text("precious\n")
    shutil.rmtree(repo / "manifests/rendered")
    (repo / "manifests/rendered").symlink_to(outside)
    for argv in (["render", "--env", "staging"], ["render"]):
        assert main(argv) == 2
    assert (outside / "staging" / "keep.txt").read_text() == "precious\n"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt", "staging"]


def test_a_symlinked_manifests_folder_is_not_followed_outside(repo: Path, outside: Path) -> None:
    shutil.move(repo / "manifests", outside / "manifests")
    (repo / "manifests").symlink_to(outside / "manifests")
    before = stage.on_disk(outside / "manifests")
    (outside / "manifests/rendered/staging/namespace-mlops-staging.yaml").write_text("# x\n")
    assert main(["render"]) == 2
    assert (
        outside / "manifests/rendered/staging/namespace-mlops-staging.yaml"
    ).read_text() == "# x\n"
    assert set(stage.on_disk(outside / "manifests")) == set(before)


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "../../x",
        "/tmp/x",
        "a/../../x",
        ".git",
        "a/.git",
        "manifests/",
        "a//b",
        ".",
        "..",
        "./manifests",
        "a\\..\\x",
    ],
)
def test_the_gitops_path_is_a_folder_inside_the_gitops_repository(
    repo: Path, path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="path"):
        load_gitops(repo, env={"MLOPS_GITOPS_PATH": path})
    monkeypatch.setenv("MLOPS_GITOPS_PATH", path)
    assert main(["render", "--check"]) == 2
    assert "MLOPS_GITOPS_PATH" in capsys.readouterr().err


@pytest.mark.parametrize(
    "remote", ["--upload-pack=touch /tmp/pwned", "ext::sh -c touch% x", "a\nb"]
)
def test_a_remote_cannot_be_an_option_or_a_remote_helper(repo: Path, remote: str) -> None:
    with pytest.raises(ConfigError, match="remote"):
        load_gitops(repo, env={"MLOPS_GITOPS_REMOTE": remote})


@pytest.mark.parametrize("remote", ["../gitops.git", "../../x/gitops.git", ".infra/../../g.git"])
def test_a_relative_local_remote_stays_inside_the_repository(repo: Path, remote: str) -> None:
    with pytest.raises(ConfigError, match="remote"):
        load_gitops(repo, env={"MLOPS_GITOPS_REMOTE": remote})


@pytest.mark.parametrize(
    "remote",
    [
        ".infra/gitops.git",
        "/srv/git/gitops.git",
        "git@github.com:acme/gitops.git",
        "https://github.com/acme/gitops.git",
    ],
)
def test_urls_absolute_paths_and_paths_inside_are_accepted_remotes(repo: Path, remote: str) -> None:
    assert load_gitops(repo, env={"MLOPS_GITOPS_REMOTE": remote}).remote == remote


@pytest.mark.parametrize(
    "remote", ["gitops-host:org/gitops.git", "x:/../../y.git", "git@github.com:acme/gitops.git"]
)
def test_what_git_reads_as_a_host_is_never_resolved_as_a_local_path(
    repo: Path, remote: str
) -> None:
    """git reads a ":" before the first "/" as scp-like host:path (an ssh alias, say), so mlops
    must too: resolving it under the repository would point somewhere git never goes."""
    from pipelines.adapters import gitops

    cfg = load_gitops(repo, env={"MLOPS_GITOPS_REMOTE": remote})
    assert gitops.resolve_remote(cfg, repo) == remote
    assert gitops.ensure_local_remote(cfg, repo, remote) is False  # never created here
    assert not (repo / remote.split(":")[0]).exists()


def test_a_symlinked_gitops_folder_is_refused_before_anything_is_written(
    repo: Path, outside: Path, tmp_path: Path
) -> None:
    """A GitOps repository whose manifests folder is a symlink out of the checkout."""
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(repo / "manifests/environments", outside / "environments")
    (work / "manifests").symlink_to(outside)
    cfg = load_gitops(repo, env={})
    checkout = gitops.Checkout(work, cfg, "unused")
    state = checkout.read_state("staging")
    with pytest.raises(ConfigError, match="outside"):
        apply_state(checkout, load_model(repo, "digits"), cfg, state)
    assert sorted(p.name for p in outside.iterdir()) == ["environments", "keep.txt"]


@pytest.mark.parametrize(
    "path", ["../x/data.csv", "/etc/passwd", "data/../../x.csv", "linked/data.csv", ".git/config"]
)
def test_the_data_source_stays_inside_the_repository(repo: Path, outside: Path, path: str) -> None:
    (outside / "data.csv").write_text("a\n")
    (repo / "linked").symlink_to(outside)
    edit_model_yaml(repo, {"data.source": {"kind": "file", "path": path}})
    with pytest.raises(ConfigError, match=r"data\.source\.path"):
        load_model(repo, "digits")


@pytest.mark.parametrize(
    "path", ["../../x/evil.py", "/tmp/evil.py", "sub/../../evil.py", "linked.py"]
)
def test_the_architecture_stays_inside_the_model_folder(
    repo: Path, outside: Path, path: str
) -> None:
    (outside / "evil.py").write_text("raise SystemExit('ran')\n")
    (repo / "models/digits/linked.py").symlink_to(outside / "evil.py")
    edit_model_yaml(repo, {"training.architecture": path})
    with pytest.raises(ConfigError, match=r"training\.architecture"):
        load_model(repo, "digits")


def test_a_data_file_inside_the_repository_is_fine(repo: Path) -> None:
    edit_model_yaml(repo, {"data.source": {"kind": "file", "path": "data/raw/digits.csv"}})
    assert load_model(repo, "digits").model.data.source.kind == "file"


def test_metrics_must_stay_inside_but_the_summary_may_not(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--metrics replaces a file: inside the repository only. --summary appends to the file
    GitHub keeps outside the checkout ($GITHUB_STEP_SUMMARY), so it is not restricted."""
    target = tmp_path / "metrics.txt"
    assert main(["report", "--metrics", str(target)]) == 2
    assert "--metrics" in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.parametrize("flag", ["--summary", "--verdict"])
@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_an_append_only_file_that_cannot_be_a_file_is_refused_first(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, where: str
) -> None:
    """--summary and --verdict only append, anywhere; a folder there, or a file where one of
    its folders must be, is exit 2 before anything runs (it used to be an internal error at
    the end, after the report was written)."""
    blocker = tmp_path / "blocker"
    if where == "a folder":
        blocker.mkdir()
        target = blocker
    else:
        blocker.write_text("a file\n")
        target = blocker / "out.md"
    command = (
        ["report"]
        if flag == "--summary"
        else ["monitor", "--env", "production", "--prometheus", "http://127.0.0.1:9"]
    )
    assert main([*command, flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{flag} {target}: {blocker} is {'a folder' if where == 'a folder' else 'a file'}" in err
    assert not (repo / "artifacts/monitor").exists()


def test_an_append_the_system_refuses_is_exit_3() -> None:
    """The kernel refuses any write to /proc/version: a real refusal, as a full disk would be."""
    from pipelines.adapters.artifacts import append_text
    from pipelines.errors import InfraError

    with pytest.raises(InfraError, match="cannot append to /proc/version") as exc:
        append_text(Path("/proc/version"), "x\n")
    assert exc.value.exit_code == 3

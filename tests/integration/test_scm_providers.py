"""The GitHub and GitLab providers against a local server that checks requests against the
documented REST APIs: create, update instead of duplicate, comments, errors, rate limits."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.adapters import scm
from pipelines.config import GitOpsConfig, load_model
from pipelines.errors import ConfigError, InfraError
from pipelines.stages import promote
from tests.conftest import copy_repo
from tests.fakes.scm_api import TOKEN, FakeApi, serve
from tests.integration.test_gitops import (
    QUIET,
    commits,
    evidence,
    git,
    promote_releases,
    release,
    remote,
)
from tests.unit.core.test_bluegreen import record


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    yield from serve("github")


@pytest.fixture
def gitlab(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    monkeypatch.delenv("CI_JOB_TOKEN", raising=False)
    yield from serve("gitlab")


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(scm, "_sleep", recorded.append)
    return recorded


def use_github(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    """Point the GitOps configuration at the fake GitHub, as Actions' variables would."""
    monkeypatch.setenv("MLOPS_SCM_PROVIDER", "github")
    monkeypatch.setenv("GITHUB_API_URL", api.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", api.state.repo)


def gh(api: FakeApi) -> scm.GitHub:
    return scm.GitHub(
        GitOpsConfig.model_validate(
            {"provider": "github", "github": {"api_url": api.url, "repository": api.state.repo}}
        )
    )


def gl(api: FakeApi, project: str = "acme/gitops") -> scm.GitLab:
    return scm.GitLab(
        GitOpsConfig.model_validate(
            {"provider": "gitlab", "gitlab": {"api_url": api.url, "project": project}}
        )
    )


def test_request_branches_round_trip_and_others_are_not_ours() -> None:
    name = scm.request_branch("promote", "production", "digits-0123")
    assert name == "promote/production/digits-0123"
    assert scm.parse_request_branch(name) == ("promote", "production", "digits-0123")
    assert scm.request_branch("rollback", "staging") == "rollback/staging/"
    for other in (
        "main",
        "feature/x",
        "promote/production/",
        "release/production/r1",
        "promote/production/r1/extra",
    ):
        assert scm.parse_request_branch(other) is None, other


def test_github_creates_then_updates_in_place(github: FakeApi) -> None:
    provider = gh(github)
    first = provider.open_or_update(
        head="promote/production/r1", base="main", title="T1", body="B1"
    )
    second = provider.open_or_update(
        head="promote/production/r1", base="main", title="T2", body="B2"
    )
    assert (first.number, first.created) == (1, True)
    assert (second.number, second.created) == (1, False)
    assert len(github.state.pulls) == 1
    assert github.state.pulls[1]["body"] == "B2"
    calls = [(r.method, r.path) for r in github.state.requests]
    assert calls == [
        ("GET", "/repos/acme/gitops/pulls"),
        ("POST", "/repos/acme/gitops/pulls"),
        ("GET", "/repos/acme/gitops/pulls"),
        ("PATCH", "/repos/acme/gitops/pulls/1"),
    ]
    lookup = github.state.requests[0]
    assert lookup.query == {"head": "acme:promote/production/r1", "base": "main", "state": "open"}
    assert github.state.requests[1].body == {
        "title": "T1",
        "head": "promote/production/r1",
        "base": "main",
        "body": "B1",
    }
    assert first.url == "https://github.example/acme/gitops/pull/1"


def test_github_race_on_create_updates_the_winner(github: FakeApi) -> None:
    """Another job opened the PR between our lookup and our create: 422, then update."""
    github.state.script.append((200, {}, []))  # our lookup sees nothing...
    github.state.pulls[1] = {
        "title": "theirs",
        "body": "",
        "head": "promote/p/r1",
        "base": "main",
        "state": "open",
    }  # ...but it exists now
    pr = gh(github).open_or_update(head="promote/p/r1", base="main", title="ours", body="ours")
    assert (pr.number, pr.created) == (1, False)
    assert github.state.pulls[1]["title"] == "ours"
    assert [r.method for r in github.state.requests] == ["GET", "POST", "GET", "GET", "PATCH"]


def test_github_comment_is_found_across_pages_and_updated(github: FakeApi) -> None:
    for i in range(150):
        github.state.comments[i + 1] = {"on": 7, "body": f"chatter {i}"}
    github.state.comments[130]["body"] = "<!-- mlops-report:digits -->\nold report"
    url = gh(github).upsert_comment(7, "<!-- mlops-report:digits -->", "new report")
    assert url == "https://github.example/c/130"
    assert github.state.comments[130]["body"] == "<!-- mlops-report:digits -->\nnew report"
    assert len(github.state.comments) == 150
    pages = [r for r in github.state.requests if r.method == "GET"]
    assert len(pages) == 2  # followed the Link: rel="next" header
    gh(github).upsert_comment(8, "<!-- mlops-report:digits -->", "first on #8")
    assert len(github.state.comments) == 151


def test_github_lists_open_requests_across_pages_and_closes_one(github: FakeApi) -> None:
    for n in range(1, 131):
        github.state.pulls[n] = {
            "title": f"T{n}",
            "body": "",
            "head": f"promote/p/r{n}",
            "base": "main" if n % 13 else "other",
            "state": "open",
        }
    provider = gh(github)
    found = provider.list_open(base="main")
    assert [pr.number for pr in found] == [n for n in range(1, 131) if n % 13]
    assert found[0].head == "promote/p/r1"
    assert [r.query.get("page") for r in github.state.requests] == [None, "2"]
    assert github.state.requests[0].query == {"state": "open", "base": "main", "per_page": "100"}
    provider.close(5)
    assert github.state.requests[-1].method == "PATCH"
    assert github.state.requests[-1].path == "/repos/acme/gitops/pulls/5"
    assert github.state.requests[-1].body == {"state": "closed"}
    assert github.state.pulls[5]["state"] == "closed"
    assert 5 not in [pr.number for pr in provider.list_open(base="main")]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "401 Unauthorized: the token was refused"),
        (404, "404"),
    ],
)
def test_github_auth_and_not_found_are_usage_errors(
    github: FakeApi, status: int, message: str
) -> None:
    github.state.script.append((status, {}, {"message": "nope"}))
    with pytest.raises(ConfigError, match=message) as caught:
        gh(github).find_open(head="x", base="main")
    assert caught.value.exit_code == 2
    assert TOKEN not in str(caught.value)


def test_github_bad_token_is_refused_by_the_server(
    github: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "wrong-token-value")
    with pytest.raises(ConfigError, match="token was refused") as caught:
        gh(github).find_open(head="x", base="main")
    assert "wrong-token-value" not in str(caught.value)


def test_github_validation_error_is_reported(github: FakeApi) -> None:
    github.state.script += [
        (200, {}, []),
        (
            422,
            {},
            {
                "message": "Validation Failed",
                "errors": [{"message": "No commits between main and promote/x"}],
            },
        ),
        (200, {}, []),
    ]
    with pytest.raises(ConfigError, match="No commits between main and promote/x"):
        gh(github).open_or_update(head="promote/x", base="main", title="t", body="b")


def test_rate_limit_with_retry_after_is_waited_out(github: FakeApi, waits: list[float]) -> None:
    github.state.script.append((429, {"Retry-After": "7"}, {"message": "slow down"}))
    assert gh(github).find_open(head="x", base="main") is None
    assert waits == [7.0]
    assert len(github.state.requests) == 2


def test_primary_rate_limit_reset_far_away_is_exit_3(github: FakeApi, waits: list[float]) -> None:
    github.state.script.append(
        (
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9999999999"},
            {"message": "API rate limit exceeded"},
        )
    )
    with pytest.raises(InfraError, match="rate limit reached") as caught:
        gh(github).find_open(head="x", base="main")
    assert caught.value.exit_code == 3
    assert waits == []


def test_server_errors_are_retried_a_bounded_number_of_times(
    github: FakeApi, waits: list[float]
) -> None:
    github.state.script += [(502, {}, {"message": "bad gateway"})] * 4
    with pytest.raises(InfraError, match="unavailable after 4 attempts"):
        gh(github).find_open(head="x", base="main")
    assert len(waits) == 4
    github.state.script += [(500, {}, {})]
    assert gh(github).find_open(head="x", base="main") is None  # recovers after one


def test_missing_token_or_repository_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="needs GITHUB_TOKEN"):
        scm.GitHub(GitOpsConfig.model_validate({"github": {"repository": "a/b"}}))
    monkeypatch.setenv("GITHUB_TOKEN", "x")
    with pytest.raises(ConfigError, match=r"github\.repository is not set"):
        scm.GitHub(GitOpsConfig())


def test_gitlab_creates_then_updates_in_place(gitlab: FakeApi) -> None:
    provider = gl(gitlab)
    first = provider.open_or_update(
        head="promote/production/r1", base="main", title="T1", body="B1"
    )
    second = provider.open_or_update(
        head="promote/production/r1", base="main", title="T2", body="B2"
    )
    assert (first.number, first.created, second.number, second.created) == (1, True, 1, False)
    assert gitlab.state.pulls[1]["body"] == "B2"
    post = next(r for r in gitlab.state.requests if r.method == "POST")
    assert post.path == "/api/v4/projects/acme%2Fgitops/merge_requests"
    assert post.body == {
        "source_branch": "promote/production/r1",
        "target_branch": "main",
        "title": "T1",
        "description": "B1",
        "remove_source_branch": True,
    }
    assert post.headers["private-token"] == TOKEN
    assert first.url.endswith("/acme/gitops/-/merge_requests/1")


def test_gitlab_conflict_on_create_updates_the_existing(gitlab: FakeApi) -> None:
    gitlab.state.script.append((200, {}, []))
    gitlab.state.pulls[1] = {
        "title": "theirs",
        "body": "",
        "head": "p/r1",
        "base": "main",
        "state": "opened",
    }
    pr = gl(gitlab).open_or_update(head="p/r1", base="main", title="ours", body="ours")
    assert (pr.number, pr.created) == (1, False)
    assert gitlab.state.pulls[1]["body"] == "ours"


def test_gitlab_lists_open_merge_requests_and_closes_one(gitlab: FakeApi) -> None:
    for iid, (head, base, st) in enumerate(
        [
            ("promote/p/r1", "main", "opened"),
            ("promote/p/r2", "main", "closed"),
            ("promote/p/r3", "other", "opened"),
            ("promote/p/r4", "main", "opened"),
        ],
        start=1,
    ):
        gitlab.state.pulls[iid] = {
            "title": head,
            "body": "",
            "head": head,
            "base": base,
            "state": st,
        }
    provider = gl(gitlab)
    assert [(pr.number, pr.head) for pr in provider.list_open(base="main")] == [
        (1, "promote/p/r1"),
        (4, "promote/p/r4"),
    ]
    assert gitlab.state.requests[0].query == {
        "state": "opened",
        "target_branch": "main",
        "per_page": "100",
    }
    provider.close(1)
    close = gitlab.state.requests[-1]
    assert (close.method, close.path, close.body) == (
        "PUT",
        "/api/v4/projects/acme%2Fgitops/merge_requests/1",
        {"state_event": "close"},
    )
    assert gitlab.state.pulls[1]["state"] == "closed"


def test_gitlab_notes_upsert_and_job_token(
    gitlab: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITLAB_TOKEN")
    monkeypatch.setenv("CI_JOB_TOKEN", TOKEN)
    provider = gl(gitlab, project="acme/gitops")
    provider.upsert_comment(3, "<!-- m -->", "one")
    provider.upsert_comment(3, "<!-- m -->", "two")
    notes = [c for c in gitlab.state.comments.values() if c["on"] == 3]
    assert [n["body"] for n in notes] == ["<!-- m -->\ntwo"]
    assert all(r.headers.get("job-token") == TOKEN for r in gitlab.state.requests)
    assert all("private-token" not in r.headers for r in gitlab.state.requests)


def test_gitlab_unknown_project_is_a_usage_error(gitlab: FakeApi) -> None:
    with pytest.raises(ConfigError, match="404"):
        gl(gitlab, project="acme/other").find_open(head="x", base="main")


def test_promotion_through_github(
    root: Path, github: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole promotion with the github provider: branch pushed, one PR with the evidence,
    updated in place on a re-run."""
    use_github(monkeypatch, github)
    release(root, 1)
    evidence(root, record(1))
    ws = load_model(root, "digits")
    first = promote.run(ws, "production", "staging", **QUIET)
    again = promote.run(ws, "production", "staging", **QUIET)
    assert (first.created, again.created, first.number, again.number) == (True, False, 1, 1)
    pr = github.state.pulls[1]
    assert pr["head"] == "promote/production/digits-000000000001"
    assert pr["base"] == "main"
    assert "## Data validation" in pr["body"]
    assert "## Rendered changes in rendered/production/" in pr["body"]
    assert "promote/production/digits-000000000001" in git(remote(root), "branch", "--list")
    assert len(commits(root)) == 2  # main is untouched until the PR is merged
    assert json.dumps([r.headers for r in github.state.requests]).count(TOKEN) == len(
        github.state.requests
    )  # the token went only where it belongs: the header


def test_a_newer_promotion_closes_the_older_pull_request_on_github(
    root: Path, github: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_github(monkeypatch, github)
    result = promote_releases(root, 1, 2)
    assert (result.number, result.superseded) == (2, (1,))
    assert {n: pr["state"] for n, pr in github.state.pulls.items()} == {1: "closed", 2: "open"}
    (comment,) = github.state.comments.values()
    assert comment["on"] == 1
    assert "Superseded by #2, which promotes digits-000000000002" in comment["body"]
    branches = git(remote(root), "branch", "--list")
    assert "promote/production/digits-000000000001" not in branches


def test_a_token_that_cannot_close_leaves_the_older_request_open_with_a_warning(
    root: Path, github: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_github(monkeypatch, github)
    github.state.deny.add(("PATCH", "/repos/acme/gitops/pulls/1"))
    result = promote_releases(root, 1, 2)
    assert (result.number, result.superseded) == (2, ())
    assert "could not close superseded #1" in result.detail
    assert github.state.pulls[1]["state"] == "open"
    assert "promote/production/digits-000000000001" in git(remote(root), "branch", "--list")


def test_report_comment_on_github_is_created_once_then_updated(
    root: Path, github: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlops report --post` on a pull request: the run's verdict, as one comment."""
    from tests.integration.test_gitops import main_in

    evidence(root, record(1))
    # The blessing must be for the model this run trained: the report checks the file's sha.
    model = root / "artifacts/digits/train/model.tflite"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"a model")
    blessing_path = root / "artifacts/digits/gate/blessing.json"
    blessing = json.loads(blessing_path.read_text())
    blessing["candidate"]["model_sha256"] = hashlib.sha256(b"a model").hexdigest()
    blessing_path.write_text(json.dumps(blessing))
    summary = root / "summary.md"
    monkeypatch.setenv("MLOPS_SCM_PROVIDER", "github")
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("MLOPS_GITHUB_REPOSITORY", github.state.repo)
    monkeypatch.setenv("GITHUB_REF", "refs/pull/12/merge")
    monkeypatch.setenv("MLOPS_ARTIFACTS_URL", "https://github.example/artifacts/99")
    for _ in range(2):
        assert main_in(root, "report", "--post", "--summary", str(summary)) == 0
    comments = [c for c in github.state.comments.values() if c["on"] == 12]
    assert len(comments) == 1
    body = comments[0]["body"]
    assert body.startswith("<!-- mlops-report:digits -->")
    assert "✅ blessed" in body
    assert (
        "[all artifacts (Data Docs, plots, blessing)](https://github.example/artifacts/99)" in body
    )
    assert summary.read_text().count("### mlops · digits") == 2  # appended per run
    monkeypatch.delenv("GITHUB_REF")
    assert main_in(root, "report", "--post") == 0  # a push build: nothing to comment on
    assert "not posted: this run belongs to no pull/merge request" in capsys.readouterr().err


def test_changed_files_on_github_and_gitlab_include_both_sides_of_a_rename(
    github: FakeApi, gitlab: FakeApi
) -> None:
    many = [(f"models/digits/f{i}.py", f"models/digits/f{i}.py") for i in range(150)]
    renamed = [("models/digits/old.csv", "datasets/new.csv")]
    for api in (github, gitlab):
        api.state.files[5] = many + renamed
    for files in (gh(github).changed_files(5), gl(gitlab).changed_files(5)):
        assert sorted(files) == sorted(
            [new for _, new in many] + ["models/digits/old.csv", "datasets/new.csv"]
        )
    # 151 files at 100 a page: two pages each, following the next link.
    assert len([r for r in github.state.requests if r.path.endswith("/pulls/5/files")]) == 2
    assert len([r for r in gitlab.state.requests if r.path.endswith("/5/diffs")]) == 2


def test_changed_files_of_a_local_request_are_unknown(root: Path) -> None:
    provider: scm.Provider = scm.Local(root)
    assert provider.changed_files(1) is None


@pytest.mark.parametrize(
    ("files", "posted"),
    [
        ([("models/digits/model.yaml", "models/digits/model.yaml")], True),
        ([("pipelines/core/gating.py", "pipelines/core/gating.py")], True),
        ([("models/churn/model.yaml", "models/churn/model.yaml")], False),
        # Moving a file out of digits' folder changes digits too.
        ([("models/digits/x.csv", "models/churn/x.csv")], True),
    ],
)
def test_the_report_comment_covers_only_the_models_the_change_touches(
    root: Path,
    github: FakeApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: list[tuple[str, str]],
    posted: bool,
) -> None:
    """One comment per model, updated in place; a change under another model's folder only
    leaves this model's comment unposted, and says why."""
    from tests.integration.test_gitops import main_in

    shutil.copytree(root / "models/digits", root / "models/churn")  # a second model
    evidence(root, record(1))
    github.state.files[21] = files
    monkeypatch.setenv("MLOPS_SCM_PROVIDER", "github")
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("MLOPS_GITHUB_REPOSITORY", github.state.repo)
    monkeypatch.setenv("MLOPS_PR_NUMBER", "21")
    assert main_in(root, "report", "--post") == 0
    comments = [c for c in github.state.comments.values() if c["on"] == 21]
    err = capsys.readouterr().err
    if posted:
        assert len(comments) == 1
        assert comments[0]["body"].startswith("<!-- mlops-report:digits -->")
    else:
        assert comments == []
        assert "not posted: the change touches neither models/digits/" in err


def test_registry_login_writes_the_docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64

    from pipelines.cli import main

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("REGISTRY", "registry.example:5000/team")
    monkeypatch.delenv("REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("CI_REGISTRY_USER", raising=False)
    assert main(["registry-login"]) == 2
    monkeypatch.setenv("REGISTRY_USERNAME", "bot")
    monkeypatch.setenv("REGISTRY_PASSWORD", "s3cret-pass")
    assert main(["registry-login"]) == 0
    assert "s3cret-pass" not in capsys.readouterr().out
    config = json.loads((tmp_path / "config.json").read_text())
    assert base64.b64decode(config["auths"]["registry.example:5000"]["auth"]) == b"bot:s3cret-pass"
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600

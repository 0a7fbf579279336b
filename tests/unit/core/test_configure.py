"""The pure half of `mlops configure`: value checks, the gitops.yaml and CODEOWNERS edits, and
the placeholder scan that guards releases."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.core import configure as c

ROOT = Path(__file__).resolve().parents[3]
GOOD = {
    "repo_url": "https://github.com/acme/gitops.git",
    "registry": "ghcr.io/acme",
    "owners": ["@acme/ml-platform", "@alice"],
    "provider": None,
}


def check(**changes: object) -> c.Values:
    args = {**GOOD, **changes}
    return c.check_values(
        str(args["repo_url"]),
        str(args["registry"]),
        list(args["owners"]),  # type: ignore[call-overload]
        args["provider"],  # type: ignore[arg-type]
    )


def test_good_values_pass_and_the_provider_comes_from_a_known_host() -> None:
    assert check() == c.Values(
        "https://github.com/acme/gitops.git",
        "ghcr.io/acme",
        ("@acme/ml-platform", "@alice"),
        "github",
    )
    assert check(repo_url="ssh://git@gitlab.com/acme/ops.git").provider == "gitlab"
    assert (
        check(repo_url="https://git.acme.example/ops.git", provider="gitlab").provider == "gitlab"
    )
    assert check(owners=["@a", "@a"]).owners == ("@a",)
    for registry in ("127.0.0.1:5000", "localhost:5001/x", "registry.gitlab.com/acme/ml"):
        assert check(registry=registry).registry == registry


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"repo_url": "git@github.com:acme/ops.git"}, "--repo-url"),  # scp-like: Flux refuses
        ({"repo_url": "https://u:pw@github.com/acme/ops.git"}, "--repo-url"),
        ({"repo_url": "file:///tmp/ops.git"}, "--repo-url"),
        ({"repo_url": "https://github.com/acme/ops.git; rm -rf /"}, "--repo-url"),
        ({"repo_url": c.TEMPLATE_REPO_URL}, "placeholder"),
        ({"registry": "acme/models"}, "--registry"),  # Docker Hub's user "acme", not a host
        ({"registry": "GHCR.io/acme"}, "--registry"),
        ({"registry": "ghcr.io/acme;id"}, "--registry"),
        ({"registry": "ghcr.io/"}, "--registry"),
        ({"owners": []}, "--owners (none)"),
        ({"owners": ["acme/team"]}, "--owners acme/team"),
        ({"owners": ["@acme/team", "@x;y"]}, "--owners @x;y"),
        ({"owners": ["@a/b/c"]}, "--owners @a/b/c"),  # GitHub has no nested teams
        ({"owners": [c.TEMPLATE_OWNER]}, "--owners"),
        ({"repo_url": "https://git.acme.example/ops.git"}, "pass --provider"),
        ({"provider": "bitbucket"}, "--provider 'bitbucket'"),
    ],
)
def test_each_bad_value_is_named(changes: dict[str, object], said: str) -> None:
    with pytest.raises(c.ConfigureError) as err:
        check(**changes)
    assert said in str(err.value)


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(c.ConfigureError) as err:
        check(repo_url="git@x:y.git", registry="Bad", owners=["nobody"])
    assert len(err.value.problems) == 4  # the URL, the registry, the provider, the owner


def test_gitlab_owners_may_name_subgroups() -> None:
    assert check(provider="gitlab", owners=["@acme/ml/platform"]).owners == ("@acme/ml/platform",)


def test_gitops_yaml_keeps_every_comment_and_other_key() -> None:
    text = (ROOT / "manifests" / "gitops.yaml").read_text()
    out = c.gitops_yaml(text, check())
    doc = yaml.safe_load(out)
    assert doc["repo_url"] == "https://github.com/acme/gitops.git"
    assert doc["registry"] == "ghcr.io/acme"
    assert {k: v for k, v in doc.items() if k not in ("repo_url", "registry")} == {
        k: v for k, v in yaml.safe_load(text).items() if k not in ("repo_url", "registry")
    }
    changed = [a for a, b in zip(text.splitlines(), out.splitlines(), strict=True) if a != b]
    assert len(changed) == 2
    assert all(line.startswith(("repo_url:", "registry:")) for line in changed)
    assert c.gitops_yaml(out, check()) == out  # idempotent


def test_gitops_yaml_that_would_not_validate_is_refused() -> None:
    with pytest.raises(c.ConfigureError, match="branch"):
        c.gitops_yaml("branch: 'a b'\n", check())
    with pytest.raises(c.ConfigureError, match="mapping"):
        c.gitops_yaml("- a\n", check())


def test_codeowners_replaces_production_owners_and_keeps_the_rest() -> None:
    patterns = c.codeowners_patterns("production")
    text = "# mine\n/docs/ @writers\n/manifests/rendered/production/ @your-org/ml-platform\n"
    out = c.codeowners(text, patterns, ["@acme/ml", "@bob"])
    assert out == (
        "# mine\n/docs/ @writers\n/manifests/rendered/production/ @acme/ml @bob\n"
        "/manifests/environments/production.yaml @acme/ml @bob\n"
    )
    assert c.codeowners(out, patterns, ["@acme/ml", "@bob"]) == out
    assert "@bob" not in c.codeowners(out, patterns, ["@acme/ml"])
    fresh = c.codeowners(None, patterns, ["@a"])
    assert fresh.startswith("# ")
    assert fresh.count("@a") == 2


def test_placeholders_are_listed_with_file_and_line() -> None:
    found = c.placeholders(
        {
            "b.yaml": "x: 1\nrepoURL: https://github.com/your-org/your-gitops-repo.git\n",
            "a.yaml": "owner: @your-org/ml-platform\n",
            "c.yaml": "url: https://github.com/acme/gitops.git\n",
        }
    )
    assert [(p.file, p.line) for p in found] == [("a.yaml", 1), ("b.yaml", 2)]
    assert str(found[1]) == "b.yaml:2: repoURL: https://github.com/your-org/your-gitops-repo.git"


def test_the_template_itself_holds_the_placeholders_configure_replaces() -> None:
    files = {
        p.relative_to(ROOT).as_posix(): p.read_text()
        for p in [
            ROOT / "manifests" / "gitops.yaml",
            ROOT / ".github" / "CODEOWNERS",
            *sorted((ROOT / "manifests" / "controllers").rglob("*.yaml")),
        ]
    }
    found = {p.file for p in c.placeholders(files)}
    assert found == set(files) - {f for f in files if "kustomization" in f}


def test_an_unconfigured_repo_url_is_named() -> None:
    from pipelines.config.schema import GitOpsConfig

    assert c.unconfigured(GitOpsConfig()) == [f"repo_url: {c.TEMPLATE_REPO_URL}"]
    assert c.unconfigured(GitOpsConfig(repo_url="https://github.com/acme/gitops.git")) == []

"""Custom kinds are checked against the vendored upstream CRDs, as strictly as the API server
does: what our checks accept, Argo CD and Flux accept."""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.adapters import manifests
from pipelines.adapters import rendering as stage
from pipelines.cli import main
from pipelines.config import load_gitops
from pipelines.core import crd
from pipelines.errors import ConfigError
from tests.unit.core import test_render
from tests.unit.core.test_render import MODELS, ROOT, TEMPLATES, rendered, states

CRDS = ROOT / "manifests" / "crds"
INDEX = yaml.safe_load((CRDS / "index.yaml").read_text())
SCP_URL = "git@github.com:acme/gitops.git"


def controllers() -> dict[str, dict[str, Any]]:
    return {
        p: yaml.safe_load(t) for p, t in rendered().files.items() if p.startswith("controllers/")
    }


def violations(obj: dict[str, Any], crds: Path = CRDS) -> list[str]:
    return [v.message for v in manifests.schema_violations(crds, {"x.yaml": obj}, "1.33")]


def patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from patterns(value)


# --- provenance ---------------------------------------------------------------------------


def test_every_vendored_crd_is_listed_pinned_and_what_it_says() -> None:
    sums = dict(line.split("  ")[::-1] for line in (CRDS / "SHA256SUMS").read_text().splitlines())
    files = sorted(p.name for p in CRDS.glob("*.yaml") if p.name != "index.yaml")
    assert sorted(e["file"] for e in INDEX) == files == sorted(sums)
    for entry in INDEX:
        data = (CRDS / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sums[entry["file"]], entry["file"]
        doc = manifests.load_crd(CRDS, entry["file"])
        assert doc["kind"] == "CustomResourceDefinition"
        assert (doc["spec"]["group"], doc["spec"]["names"]["kind"]) == (
            entry["group"],
            entry["kind"],
        )
        assert entry["upstream"].startswith("https://github.com/")
        assert entry["version"]


def test_an_edited_crd_is_refused(tmp_path: Path) -> None:
    crds = shutil.copytree(CRDS, tmp_path / "crds")
    path = crds / "source.toolkit.fluxcd.io_gitrepositories.yaml"
    path.write_text(path.read_text().replace("^(http|https|ssh)://.*$", ".*"))
    obj = controllers()["controllers/flux/gitrepository-mlops-gitops.yaml"]
    with pytest.raises(ConfigError, match="sha256 does not match"):
        violations({**obj, "spec": {**obj["spec"], "url": SCP_URL}}, crds)


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["kind"])
def test_every_pattern_of_every_vendored_crd_compiles(entry: dict[str, str]) -> None:
    doc = manifests.load_crd(CRDS, entry["file"])
    for api_version in crd.served_versions(doc):
        for pattern in patterns(crd.object_schema(doc, api_version)):
            re.compile(pattern)


@pytest.mark.parametrize(
    ("go", "python", "matches", "misses"),
    [
        ("^(?i)(abort|warn)?$", "^(?i:(abort|warn)?$)", ["WARN", ""], ["x"]),
        ("^((?i)sun|mon)day$", "^((?i:sun)|(?i:mon))day$", ["SUNday", "MONday"], ["SUNDAY"]),
        ("a(?i)b|c", "a(?i:b)|(?i:c)", ["aB", "C"], ["AB"]),
        ("(?i)abc", "(?i)abc", ["ABC"], ["ab"]),
        (r"[(?i)]x\z", r"[(?i)]x\Z", ["ix"], ["Ix", "ix\n"]),
    ],
)
def test_re2_inline_flags_become_python_scoped_flags(
    go: str, python: str, matches: list[str], misses: list[str]
) -> None:
    assert crd.translate_pattern(go) == python
    assert all(re.search(python, s) for s in matches)
    assert not any(re.search(python, s) for s in misses)


# --- what is rendered passes; what a controller refuses is refused -------------------------


def test_the_rendered_controllers_pass_their_upstream_crds() -> None:
    objects = controllers()
    kinds = sorted({o["kind"] for o in objects.values()})
    assert kinds == ["AppProject", "Application", "GitRepository", "Kustomization"]
    for path, obj in objects.items():
        assert violations(obj) == [], path


def test_the_scp_like_url_is_refused_when_configured() -> None:
    with pytest.raises(ConfigError, match="both Argo CD and Flux") as exc:
        load_gitops(ROOT, env={"MLOPS_GITOPS_REPO_URL": SCP_URL})
    assert "MLOPS_GITOPS_REPO_URL" in str(exc.value)


def test_the_scp_like_url_makes_render_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_GITOPS_REPO_URL", SCP_URL)
    assert main(["render", "--check"]) == 2
    assert "repo_url" in capsys.readouterr().err


def test_the_scp_like_url_is_refused_by_the_flux_crd_too() -> None:
    """Even past the config (model_construct skips validation), the CRD check refuses it."""
    gitops = test_render.gitops().model_copy(update={"repo_url": SCP_URL})
    result = stage.render_all(ROOT / "manifests", TEMPLATES, MODELS, gitops, states())
    messages = [str(v) for v in result.violations]
    assert any(
        "gitrepository-mlops-gitops.yaml" in m and "spec.url" in m and "(http|https|ssh)" in m
        for m in messages
    ), messages


ACCEPTED = [
    "https://github.com/acme/gitops.git",
    "https://gitlab.example:8443/g/sub/gitops",
    "ssh://git@github.com/acme/gitops.git",
    "http://gitea.local/acme/gitops.git",
    "https://bot@github.com/acme/gitops.git",
]
REFUSED = [
    SCP_URL,
    "github.com/acme/gitops.git",
    "file:///srv/gitops.git",
    "/srv/gitops.git",
    "https://user:s3cret@github.com/acme/gitops.git",
    "ssh://github.com:acme/gitops",
    "git://github.com/acme/gitops.git",
    "https://github.com/acme/gitops.git\n- x",
    "https://github.com",
    "ext::sh -c touch% /tmp/x",
    "HTTPS://github.com/a/b",
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_every_accepted_repo_url_passes_both_controllers(url: str) -> None:
    gitops = load_gitops(ROOT, env={"MLOPS_GITOPS_REPO_URL": url}).model_copy(
        update={"guard": test_render.gitops().guard}
    )
    result = stage.render_all(ROOT / "manifests", TEMPLATES, MODELS, gitops, states())
    assert result.violations == []


@pytest.mark.parametrize("url", REFUSED)
def test_repo_urls_outside_the_allow_list_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="repo_url"):
        load_gitops(ROOT, env={"MLOPS_GITOPS_REPO_URL": url})


# --- mutations: every vendored kind, and the controllers' own fields ----------------------


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["kind"])
def test_unknown_fields_and_bad_metadata_are_refused_for_every_vendored_kind(
    entry: dict[str, str],
) -> None:
    doc = manifests.load_crd(CRDS, entry["file"])
    for api_version in crd.served_versions(doc):
        base = {
            "apiVersion": api_version,
            "kind": entry["kind"],
            "metadata": {"name": "x", "namespace": "mlops"},
            "spec": {},
        }
        baseline = set(violations(base))  # required spec fields may be missing: not the point
        mutations: list[tuple[dict[str, Any], str]] = [
            ({"spec": {"bogus": 1}}, "'bogus' was unexpected"),
            ({"bogus": 1}, "'bogus' was unexpected"),
            ({"metadata": {"name": "x", "nmespace": "mlops"}}, "'nmespace' was unexpected"),
            ({"metadata": {"name": "Not_A_Name"}}, "does not match"),
            ({"metadata": {"name": "x", "labels": {"a": 1}}}, "is not of type 'string'"),
            ({"metadata": {}}, "'name' is a required property"),
        ]
        for mutation, expected in mutations:
            found = set(violations({**base, **mutation})) - baseline
            assert any(expected in m for m in found), (entry["kind"], mutation, found)
    bad_version = violations(
        {"apiVersion": f"{entry['group']}/v9", "kind": entry["kind"], "metadata": {"name": "x"}}
    )
    assert any("is not served" in m for m in bad_version)


def mutate(obj: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node = out
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return out


DELETE = object()
MUTATIONS = {
    "controllers/flux/gitrepository-mlops-gitops.yaml": [
        ("spec.url", SCP_URL),
        ("spec.interval", "1 minute"),
        ("spec.ref.brnch", "main"),
        ("spec.url", DELETE),
        ("spec.provider", "bitbucket"),
    ],
    "controllers/flux/kustomization-mlops-staging.yaml": [
        ("spec.prune", "yes"),
        ("spec.sourceRef.kind", "HelmRepository"),
        ("spec.timeout", "5 min"),
        ("spec.path", 5),
        ("spec.sourceRef.nme", "x"),
        ("spec.interval", DELETE),
    ],
    "controllers/argocd/application-mlops-staging.yaml": [
        ("spec.destination", DELETE),
        ("spec.source.directory.recurse", "no"),
        ("spec.syncPolicy.automated.prune", "true"),
        ("spec.sourc", {}),
        ("spec.syncPolicy.retry.limit", "five"),
    ],
    "controllers/argocd/appproject-mlops.yaml": [
        ("spec.sourceRepos", "https://github.com/acme/gitops.git"),
        ("spec.destinations.0.namespac", "x"),
        ("spec.clusterResourceWhitelist.0.kind", 1),
    ],
}


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [(path, field, value) for path, cases in MUTATIONS.items() for field, value in cases],
    ids=lambda v: "delete" if v is DELETE else str(v),
)
def test_mutations_of_the_rendered_controllers_are_caught(
    path: str, field: str, value: Any
) -> None:
    obj = controllers()[path]
    assert violations(obj) == []
    assert violations(mutate(obj, field, value)) != []


def test_a_custom_kind_without_a_vendored_crd_is_refused() -> None:
    found = violations(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}
    )
    assert any("manifests/crds/" in m for m in found), found


def test_lint_refuses_an_unknown_field_in_a_committed_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for rel in ("manifests", "models"):
        shutil.copytree(ROOT / rel, tmp_path / rel)
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "manifests/controllers/flux/kustomization-mlops-staging.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["pruen"] = True
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    assert main(["lint-manifests"]) == 1
    assert "'pruen' was unexpected" in capsys.readouterr().err

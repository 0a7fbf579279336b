"""`mlops cluster-job`: what it refuses before it touches a cluster, and a cluster that does
not answer (no cluster is available here: applying to a real one is the train-cluster
workflow's job)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.adapters.workers import free_ports
from pipelines.cli import main
from tests.conftest import copy_repo

IMAGE = f"registry.example/mlops/train@sha256:{'e' * 64}"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = copy_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


def set_image(root: Path) -> None:
    path = root / "manifests/gitops.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["jobs"]["image"] = IMAGE
    path.write_text(yaml.safe_dump(doc))


def test_no_training_image_means_no_jobs(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster-job", "--job", "train"]) == 2
    err = capsys.readouterr().err
    assert "sets no jobs.image" in err
    assert "hint:" in err


def test_jobs_that_were_not_rendered_and_committed_are_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_image(repo)
    assert main(["cluster-job", "--job", "train"]) == 1
    assert "manifests/jobs/digits is not what the configuration renders" in capsys.readouterr().err


def test_an_unreachable_cluster_is_exit_3(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_image(repo)
    assert main(["render"]) == 0
    assert sorted(p.name for p in (repo / "manifests/jobs/digits").iterdir()) == [
        "job-digits-train.yaml",
        "job-digits-tune.yaml",
    ]
    (port,) = free_ports(1)  # nothing listens there
    kubeconfig = repo.parent / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert main(["cluster-job", "--job", "tune"]) == 3
    err = capsys.readouterr().err
    assert "the Kubernetes API did not answer for Job mlops-training/digits-tune" in err
    assert "not-a-real-token" not in err


# A user entry with its token one level too high: the client's error names the entry by its
# dict, token included.
MISPLACED_TOKEN = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, token: not-a-real-token}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (
            MISPLACED_TOKEN,
            "the kubeconfig {path} does not load: ConfigException: Invalid kube-config file. "
            "Expected key user in {path}/{{...}}",
        ),
        (
            "users: [{name: u, user: {token: not-a-real-token\n",
            "the kubeconfig {path} does not load: ParserError",
        ),
        (None, "KUBECONFIG names {path}: no such file"),
    ],
    ids=["malformed", "not-yaml", "missing"],
)
def test_a_kubeconfig_that_does_not_load_is_named_not_bypassed(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    says: str,
) -> None:
    set_image(repo)
    assert main(["render"]) == 0
    capsys.readouterr()
    kubeconfig = repo.parent / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # Inside a pod, as CI's runner may be: the service account must not stand in for it.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")
    assert main(["cluster-job", "--job", "train"]) == 2
    err = capsys.readouterr().err
    assert says.format(path=kubeconfig) in err
    assert "service account" not in err
    assert "not-a-real-token" not in err


def test_without_kubeconfig_or_pod_there_are_no_credentials(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_image(repo)
    assert main(["render"]) == 0
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(repo.parent))  # no ~/.kube/config
    assert main(["cluster-job", "--job", "train"]) == 2
    assert "no Kubernetes credentials: KUBECONFIG is unset" in capsys.readouterr().err


def test_an_unknown_job_is_a_usage_error(repo: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["cluster-job", "--job", "deploy"])
    assert exit_.value.code == 2


def test_a_model_without_a_search_space_has_no_tuning_job(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_image(repo)
    path = repo / "models/digits/model.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["tuning"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["render"]) == 0
    assert [p.name for p in (repo / "manifests/jobs/digits").iterdir()] == ["job-digits-train.yaml"]
    assert main(["cluster-job", "--job", "tune"]) == 2
    assert "digits has no tune Job: its model.yaml has no tuning section" in (
        capsys.readouterr().err
    )

"""Rendering: golden files, byte-stable output, YAML-injection safety, and the schema and
policy checks on the result."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pipelines.adapters import rendering as stage
from pipelines.adapters.manifests import load_templates
from pipelines.cli import main
from pipelines.config import (
    DistributionConfig,
    EnvironmentState,
    GitOpsConfig,
    ModelConfig,
    ModelSlot,
    NodePool,
    ReleaseRecord,
    load_gitops,
    load_model,
)
from pipelines.core import distribution, job_render, policy, render

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden"
TEMPLATES = load_templates(ROOT / "manifests")
MODELS = {"digits": load_model(ROOT, "digits").model}


def record(n: int, **overrides: str) -> ReleaseRecord:
    registry = "registry.example/mlops"
    fields: dict[str, object] = {
        "release_id": f"digits-{n:012d}",
        "image": f"{registry}/digits@sha256:{n:064x}",
        "model_sha256": f"{n:064x}",
        "model_artifact": f"{registry}/digits-model@sha256:{n:064x}",
        "data_md5": "c41d00808c9f6c89700de487e190c932.dir",
        "source_commit": "a" * 40,
        "metrics": {"accuracy": 0.98},
        "released_at": "2026-11-21T12:00:00Z",
    }
    fields.update(overrides)
    return ReleaseRecord.model_construct(**fields)  # type: ignore[arg-type]


def states() -> dict[str, EnvironmentState]:
    return {
        "staging": EnvironmentState(
            node_pool=NodePool(cpu="4", memory="16Gi", nodes=3),
            environment="staging",
            namespace="mlops-staging",
            # The guard may roll staging back: its rollback-worthy alerts carry action=rollback.
            auto_rollback="direct",
            models={"digits": ModelSlot(active="green", blue=record(1), green=record(2))},
        ),
        "production": EnvironmentState(
            node_pool=NodePool(cpu="4", memory="16Gi", nodes=3),
            environment="production",
            namespace="mlops-production",
            promotion="pr",
            models={"digits": ModelSlot(active="blue", replicas=3, blue=record(1))},
        ),
    }


def gitops() -> GitOpsConfig:
    """The repository's gitops.yaml with the guard's tools image set: staging allows automatic
    rollback, and rendering refuses a guard without a pinned image. The training image is set
    too, so the training and tuning Jobs are rendered."""
    cfg = load_gitops(ROOT, env={})
    guard = cfg.guard.model_copy(
        update={"image": f"registry.example/mlops/tools@sha256:{'f' * 64}"}
    )
    jobs = cfg.jobs.model_copy(update={"image": f"registry.example/mlops/train@sha256:{'e' * 64}"})
    return cfg.model_copy(update={"guard": guard, "jobs": jobs})


def with_workers(workers: int) -> dict[str, ModelConfig]:
    """The models, digits training across ``workers`` workers."""
    digits = MODELS["digits"]
    training = digits.training.model_copy(
        update={"distribution": DistributionConfig(workers=workers)}
    )
    return {"digits": digits.model_copy(update={"training": training})}


def rendered() -> stage.Rendering:
    """The golden rendering: digits trains across two workers in the cluster."""
    return stage.render_all(ROOT / "manifests", TEMPLATES, with_workers(2), gitops(), states())


def test_rendering_matches_the_golden_files() -> None:
    files = rendered().files
    if os.environ.get("UPDATE_GOLDEN") == "1":
        stage.write(GOLDEN, files)
    golden = stage.on_disk(GOLDEN)
    assert sorted(files) == sorted(golden), "objects differ from tests/golden (UPDATE_GOLDEN=1)"
    for path, text in files.items():
        assert text == golden[path], f"{path} differs from its golden file"


def test_rendering_is_byte_stable_and_clean() -> None:
    first, second = rendered(), rendered()
    assert first.files == second.files
    assert first.violations == []


def test_objects_per_environment() -> None:
    files = rendered().files
    staging = sorted(p.split("/")[-1] for p in files if p.startswith("rendered/staging/"))
    assert staging == [
        "alertmanagerconfig-mlops-guard.yaml",  # staging allows automatic rollback: the guard
        "configmap-digits-dashboard.yaml",
        "deployment-digits-blue.yaml",
        "deployment-digits-green.yaml",
        "deployment-mlops-guard.yaml",
        "horizontalpodautoscaler-digits-blue.yaml",
        "horizontalpodautoscaler-digits-green.yaml",
        "job-digits-smoke-000000000002.yaml",
        "namespace-mlops-staging.yaml",
        "networkpolicy-digits.yaml",
        "networkpolicy-mlops-guard.yaml",
        "poddisruptionbudget-digits-blue.yaml",
        "poddisruptionbudget-digits-green.yaml",
        "podmonitor-digits.yaml",
        "prometheusrule-digits.yaml",
        "resourcequota-mlops-staging.yaml",  # the node pool's budget
        "service-digits-preview.yaml",
        "service-digits.yaml",
        "service-mlops-guard.yaml",
        "serviceaccount-digits.yaml",
    ]
    active = yaml.safe_load(files["rendered/staging/service-digits.yaml"])
    preview = yaml.safe_load(files["rendered/staging/service-digits-preview.yaml"])
    assert active["spec"]["selector"] == {"app": "digits", "color": "green"}
    assert preview["spec"]["selector"] == {"app": "digits", "color": "blue"}
    assert active["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
    deployment = yaml.safe_load(files["rendered/staging/deployment-digits-green.yaml"])
    assert deployment["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "0"
    assert deployment["spec"]["template"]["metadata"]["labels"] == {
        "app": "digits",
        "color": "green",
        "release": "digits-000000000002",
    }
    job = yaml.safe_load(files["rendered/staging/job-digits-smoke-000000000002.yaml"])
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
    prod = [p for p in files if p.startswith("rendered/production/")]
    assert "rendered/production/service-digits-preview.yaml" not in prod  # nothing idle yet
    hpa = yaml.safe_load(files["rendered/production/horizontalpodautoscaler-digits-blue.yaml"])
    assert hpa["spec"]["minReplicas"] == 3  # the environment's override


EVIL = [
    'x"\nkind: Secret',
    "a: b",
    "{{ 7 * 7 }}",
    "'; rm -rf /",
    "--- \napiVersion: v1\nkind: Secret\n",
    "line\u2028separator",
    "tab\there # comment",
]


@pytest.mark.parametrize("evil", EVIL)
def test_no_value_can_change_the_yaml_structure(evil: str) -> None:
    """Values bypass validation here (model_construct) to prove the renderer alone is safe."""
    evil_record = record(2, release_id=evil, source_commit=evil, released_at=evil, data_md5=evil)
    state = EnvironmentState.model_construct(
        node_pool=NodePool(cpu="4", memory="16Gi", nodes=3),
        environment="staging",
        namespace="mlops-staging",
        promotion="direct",
        rollback="direct",
        models={
            "digits": ModelSlot.model_construct(
                active="green", replicas=None, blue=record(1), green=evil_record
            )
        },
    )
    benign = render.environment_objects(states()["staging"], MODELS, TEMPLATES)
    objects = render.environment_objects(state, MODELS, TEMPLATES)
    assert [o.kind for o in objects] == [o.kind for o in benign]
    green = next(o.obj for o in objects if o.name == "digits-green")
    assert green["metadata"]["labels"]["release"] == evil
    assert green["metadata"]["annotations"]["mlops.io/source-commit"] == evil
    env = green["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MLOPS_RELEASE_ID", "value": evil} in env
    for got, want in zip(objects, benign, strict=True):
        assert sorted(got.obj) == sorted(want.obj)
        assert sorted(got.obj["metadata"]) == sorted(want.obj["metadata"])
    # ...and the canonical files parse back to the same objects.
    for text, obj in zip(render.to_files(objects, "x").values(), objects, strict=True):
        assert yaml.safe_load(text) == obj.obj


def test_a_template_that_emits_two_documents_is_refused() -> None:
    broken = {
        **TEMPLATES,
        "namespace.yaml.j2": TEMPLATES["namespace.yaml.j2"] + "\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
    }
    with pytest.raises(render.RenderError, match="2 documents"):
        render.environment_objects(states()["staging"], MODELS, broken)


def test_an_undefined_variable_is_an_error_not_an_empty_string() -> None:
    broken = {
        **TEMPLATES,
        "namespace.yaml.j2": TEMPLATES["namespace.yaml.j2"].replace(
            "env.namespace", "env.nmaespace"
        ),
    }
    with pytest.raises(render.RenderError, match="nmaespace"):
        render.environment_objects(states()["staging"], MODELS, broken)


def test_committed_manifests_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "--check"]) == 0, capsys.readouterr().out
    assert main(["lint-manifests"]) == 0


@pytest.fixture
def manifests_copy(tmp_path: Path) -> Path:
    """A repository root with this one's manifests and models, to edit freely."""
    import shutil

    for rel in ("manifests", "models"):
        shutil.copytree(ROOT / rel, tmp_path / rel)
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


def test_check_shows_a_diff_and_fails_when_stale(
    manifests_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path = manifests_copy
    (tmp_path / "manifests/rendered/staging/namespace-mlops-staging.yaml").write_text(
        "# edited by hand\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["render", "--check"]) == 1
    captured = capsys.readouterr()
    assert "+apiVersion: v1" in captured.out
    assert "-# edited by hand" in captured.out
    assert "stale" in captured.err
    assert main(["render"]) == 0
    assert main(["render", "--check"]) == 0


def test_lint_lists_every_violation_in_committed_files(
    manifests_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path = manifests_copy
    stage.write(tmp_path / "manifests", rendered().files)
    path = tmp_path / "manifests/rendered/staging/deployment-digits-green.yaml"
    doc = yaml.safe_load(path.read_text())
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "digits:latest"
    del container["resources"]["limits"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    container["env"].append({"name": "API_TOKEN", "value": "hunter2"})
    doc["spec"]["bogus"] = 1
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    assert main(["lint-manifests"]) == 1
    err = capsys.readouterr().err
    for expected in (
        "[image-by-digest]",
        "[resources] container server: no limits.cpu",
        "[read-only-root]",
        "[no-secrets] container server: env API_TOKEN",
        "[schema] Kubernetes 1.33",
    ):
        assert expected in err, expected
    assert "deployment-digits-green.yaml (Deployment/digits-green)" in err


def test_selector_labels_reach_the_objects_the_operator_selects_and_no_others() -> None:
    """gitops.yaml's monitoring.selector_labels (kube-prometheus-stack selects by `release`)."""
    labelled = {
        path.rsplit("/", 1)[-1]
        for path, text in rendered().files.items()
        if yaml.safe_load(text)["metadata"].get("labels", {}).get("release")
        == "kube-prometheus-stack"
    }
    assert labelled == {
        "prometheusrule-digits.yaml",
        "podmonitor-digits.yaml",
        "alertmanagerconfig-mlops-guard.yaml",
    }


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"app": "x"}, "mlops sets these labels itself"),
        ({"app.kubernetes.io/managed-by": "x"}, "mlops sets these labels itself"),
        ({"bad key!": "x"}, "String should match pattern"),
        ({"release": "no spaces"}, "String should match pattern"),
        ({"release": "x" * 64}, "String should match pattern"),
    ],
)
def test_selector_labels_are_kubernetes_labels_and_not_ours(
    labels: dict[str, str], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        GitOpsConfig.model_validate({"monitoring": {"selector_labels": labels}})


def test_the_training_job_is_an_indexed_job_whose_workers_find_each_other() -> None:
    files = rendered().files
    assert sorted(p for p in files if p.startswith("jobs/")) == [
        "jobs/digits/job-digits-train.yaml",
        "jobs/digits/job-digits-tune.yaml",
        "jobs/digits/service-digits-train.yaml",
    ]
    job = yaml.safe_load(files["jobs/digits/job-digits-train.yaml"])
    service = yaml.safe_load(files["jobs/digits/service-digits-train.yaml"])
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 2
    assert spec["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}  # the chief
    assert spec["backoffLimitPerIndex"] == 1
    assert spec["maxFailedIndexes"] == 0
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"app": "digits-train"}
    assert job["spec"]["template"]["metadata"]["labels"]["app"] == "digits-train"
    assert pod["subdomain"] == service["metadata"]["name"]
    args = pod["containers"][0]["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    # What the pods' TF_CONFIG says is what the Service and the pods' hostnames resolve.
    cluster = distribution.job_cluster(
        flags["--job"], flags["--job-service"], int(flags["--workers"]), 1, int(flags["--job-port"])
    )
    name = job["metadata"]["name"]
    assert cluster.workers == (f"{name}-0.{name}:2222", f"{name}-1.{name}:2222")
    assert service["spec"]["ports"][0]["port"] == int(flags["--job-port"])
    # Shared storage for the data and the artifact; nothing else is writable.
    claim = next(v for v in pod["volumes"] if v["name"] == "workspace")
    assert claim["persistentVolumeClaim"]["claimName"] == "mlops-training"
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_tuning_job_takes_its_database_from_a_secret_by_name() -> None:
    text = rendered().files["jobs/digits/job-digits-tune.yaml"]
    job = yaml.safe_load(text)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "tune"
    # The DSN reaches tune as its default storage, never as an argument (`ps` shows those).
    assert not any("STORAGE" in a or a == "--storage" for a in container["args"])
    storage = next(e for e in container["env"] if e["name"] == "MLOPS_TUNE_STORAGE")
    assert storage == {
        "name": "MLOPS_TUNE_STORAGE",
        "valueFrom": {"secretKeyRef": {"name": "mlops-tuning-db", "key": "dsn"}},
    }
    assert "postgresql://" not in text


def test_one_worker_trains_in_one_pod_without_a_service() -> None:
    objects = job_render.job_objects(with_workers(1)["digits"], gitops(), TEMPLATES)
    assert [o.filename for o in objects] == ["job-digits-train.yaml", "job-digits-tune.yaml"]
    job = objects[0].obj
    assert job["spec"]["completions"] == 1
    assert "subdomain" not in job["spec"]["template"]["spec"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "train",
        "--model",
        "digits",
        "--workers",
        "1",
    ]


def test_no_jobs_are_rendered_without_a_training_image() -> None:
    cfg = load_gitops(ROOT, env={})
    assert cfg.jobs.image == ""
    assert job_render.job_objects(MODELS["digits"], cfg, TEMPLATES) == []


def test_a_headless_service_must_select_its_indexed_job() -> None:
    objects = job_render.job_objects(with_workers(2)["digits"], gitops(), TEMPLATES)
    files = {o.filename: o.obj for o in objects}
    assert policy.check(files) == []
    service = files["service-digits-train.yaml"]
    wrong = {**service, "spec": {**service["spec"], "selector": {"app": "digits-tune"}}}
    found = policy.check({**files, "service-digits-train.yaml": wrong})
    assert [v.rule for v in found] == ["headless-selects-one-job"]
    assert "subdomain" in found[0].message
    alone = policy.check({"service-digits-train.yaml": service})
    assert [v.rule for v in alone] == ["headless-selects-one-job"]
    assert "matches 0 Job(s)" in alone[0].message


def test_a_job_the_kubernetes_schema_refuses_is_a_violation() -> None:
    broken = {
        **TEMPLATES,
        "jobs/train-job.yaml.j2": TEMPLATES["jobs/train-job.yaml.j2"].replace(
            "backoffLimitPerIndex:", "backoffLimitPerIndx:"
        ),
    }
    result = stage.render_all(ROOT / "manifests", broken, with_workers(2), gitops(), states())
    assert [v.file for v in result.violations] == ["jobs/digits/job-digits-train.yaml"]
    assert "backoffLimitPerIndx" in str(result.violations[0])

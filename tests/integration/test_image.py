"""package and verify on the real Docker engine and registry: build, push, digest through the
registry's HTTP API, SBOM, model artifact by digest, verification, re-use, and a tampered image
that must fail. Skips without the infrastructure locally; fails in CI (MLOPS_REQUIRE_INFRA=1)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import requests

from pipelines import evidence
from pipelines.adapters.artifacts import sha256_file
from pipelines.adapters.registry import Reference, Registry
from pipelines.cli import main
from pipelines.config import load_model
from pipelines.errors import CheckFailed
from pipelines.stages import evaluate, gate, package, train, verify
from tests.conftest import edit_model_yaml

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def packaged(
    prepared: Path, infra: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, object]]:
    """A workspace whose blessed model was packaged and pushed once."""
    root = tmp_path_factory.mktemp("packaged") / "repo"
    shutil.copytree(prepared, root, symlinks=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("BASE_IMAGE", infra)
    ws = load_model(root, "digits")
    gate.run(ws)
    package.run(ws, progress=lambda _: None)
    mp.undo()
    return root, json.loads((root / "artifacts/digits/package/release.json").read_text())


@pytest.fixture(autouse=True)
def _base_image(infra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE_IMAGE", infra)


def test_pushed_digest_is_what_the_registry_serves(
    packaged: tuple[Path, dict[str, object]],
) -> None:
    _, record = packaged
    ref = Reference.parse(str(record["image"]))
    head = requests.head(
        f"http://{ref.host}/v2/{ref.repository}/manifests/{record['release_id']}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == ref.digest
    size = record["compressed_size_bytes"]
    assert isinstance(size, int)
    assert size > 0


def test_image_labels_user_and_no_tensorflow(packaged: tuple[Path, dict[str, object]]) -> None:
    import docker

    root, record = packaged
    with contextlib.closing(docker.from_env()) as client:
        image = client.images.get(str(record["image"]))
    labels = image.labels
    assert labels["io.mlops.model.sha256"] == sha256_file(
        root / "artifacts/digits/train/model.tflite"
    )
    assert labels["io.mlops.release.id"] == record["release_id"]
    assert len(labels["org.opencontainers.image.revision"].removesuffix("-dirty")) == 40
    assert labels["org.opencontainers.image.created"].endswith("+00:00")
    assert "org.opencontainers.image.source" in labels
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert image.attrs["Config"]["Entrypoint"] == ["python", "-m", "pipelines.serving"]
    names = {
        c["name"].lower()
        for c in json.loads((root / "artifacts/digits/package/sbom.cdx.json").read_text())[
            "components"
        ]
    }
    assert "tensorflow" not in names
    assert "tensorflow-cpu" not in names
    assert {"ai-edge-litert", "numpy", "starlette", "uvicorn"} <= names


def test_sbom_is_valid_cyclonedx_with_the_model(packaged: tuple[Path, dict[str, object]]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    root, record = packaged
    text = (root / "artifacts/digits/package/sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["metadata"]["component"]["version"] == record["release_id"]
    model = [c for c in doc["components"] if c["type"] == "machine-learning-model"]
    assert model[0]["hashes"][0]["content"] == record["model_sha256"]
    libraries = [c for c in doc["components"] if c["type"] == "library"]
    assert len(libraries) == record["packages"]
    assert all(c["purl"].startswith("pkg:pypi/") and c["hashes"] for c in libraries)


def test_model_artifact_is_fetched_by_digest(packaged: tuple[Path, dict[str, object]]) -> None:
    root, record = packaged
    data = Registry().pull_model(
        str(record["model_artifact"]), "model.tflite", str(record["model_sha256"])
    )
    assert data == (root / "artifacts/digits/train/model.tflite").read_bytes()


def test_the_profile_ships_with_the_model_and_the_release_summarises_it(
    packaged: tuple[Path, dict[str, object]],
) -> None:
    root, record = packaged
    trained = (root / "artifacts/digits/train/profile.json").read_bytes()
    summary = record["profile"]
    assert isinstance(summary, dict)
    assert summary["sha256"] == hashlib.sha256(trained).hexdigest()
    profile = json.loads(trained)
    assert summary["window_instances"] == profile["drift"]["window_instances"] == 200
    assert summary["anomaly_threshold"] == profile["anomaly"]["threshold"]
    signature = json.loads((root / "artifacts/digits/package/signature.json").read_text())
    assert signature["profile_sha256"] == summary["sha256"]
    fetched = Registry().pull_model(
        str(record["model_artifact"]), "profile.json", str(summary["sha256"])
    )
    assert fetched == trained


def test_same_inputs_reuse_the_pushed_image(packaged: tuple[Path, dict[str, object]]) -> None:
    root, record = packaged
    lines: list[str] = []
    again = package.run(load_model(root, "digits"), progress=lines.append)
    assert again.reused is True
    assert again.image == record["image"]
    assert not any("Step " in line for line in lines)


def test_verify_blesses_the_real_image(packaged: tuple[Path, dict[str, object]]) -> None:
    import docker

    root, record = packaged
    result = verify.run(load_model(root, "digits"), progress=lambda _: None)
    blessing = json.loads(result.infra_blessing.read_text())
    assert blessing["blessed"] is True
    assert blessing["image"] == record["image"]
    assert {r["rule"] for r in blessing["rules"] if r["passed"]} == {
        "ready",
        "same_predictions",
        "malformed_rejected",
        "no_restart",
        "structured_logs",
        "non_root",
        "sbom_matches",
    }
    assert blessing["examples"] == 360
    assert blessing["latency_ms"]["p99"] > 0
    assert all(m["got"] == m["expected"] for m in blessing["malformed_requests"])
    with contextlib.closing(docker.from_env()) as client:
        leftovers = client.containers.list(
            all=True, filters={"label": "io.mlops.purpose=mlops-verify"}
        )
    assert leftovers == []
    assert evidence.require_infra_blessing(load_model(root, "digits")).blessed is True


def test_a_tampered_image_fails_verification(
    packaged: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """An image holding a different model (self-consistent, so it becomes ready) must not pass
    for the one evaluate measured."""
    root, record = packaged
    other = tmp_path / "other"
    shutil.copytree(root, other, symlinks=True)
    edit_model_yaml(
        other,
        {
            "training.epochs": 1,
            "gate.thresholds.accuracy": 0.1,
            "gate.thresholds.macro_f1": 0.1,
            "gate.per_class.min_recall": 0.0,
        },
    )
    ws_other = load_model(other, "digits")
    train.run(ws_other)
    evaluate.run(ws_other)
    gate.run(ws_other)
    tampered = package.run(ws_other, progress=lambda _: None)
    assert tampered.image != record["image"]

    release = root / "artifacts/digits/package/release.json"
    original = release.read_text()
    release.write_text(json.dumps({**record, "image": tampered.image}))
    try:
        with pytest.raises(CheckFailed, match="same_predictions"):
            verify.run(load_model(root, "digits"), progress=lambda _: None)
    finally:
        release.write_text(original)
    failed = {
        r["rule"]: r["reason"]
        for r in json.loads((root / "artifacts/digits/verify/infra_blessing.json").read_text())[
            "rules"
        ]
        if not r["passed"]
    }
    assert set(failed) == {"same_predictions"}
    assert "predictions differ from evaluate's" in failed["same_predictions"]


@pytest.mark.parametrize(
    ("variable", "value", "code", "messages"),
    [
        ("REGISTRY", "127.0.0.1:1", 3, ["registry 127.0.0.1:1 is unreachable", "make infra-up"]),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock", 3, ["no docker engine is reachable"]),
        ("BASE_IMAGE", "python:3.11-slim", 2, ["is not pinned by digest"]),
    ],
    ids=["registry down", "engine down", "unpinned base image"],
)
def test_package_refuses_with_exit_code_and_hint(
    packaged: tuple[Path, dict[str, object]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    code: int,
    messages: list[str],
) -> None:
    root, _ = packaged
    monkeypatch.chdir(root)
    monkeypatch.setenv(variable, value)
    assert main(["package"]) == code
    err = capsys.readouterr().err
    for message in messages:
        assert message in err

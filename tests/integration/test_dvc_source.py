"""A data source kept in the team's DVC remote (a local-folder remote here, as S3/GCS/Azure/SSH
would be): `mlops data track` records and pushes it, ingest pulls it where it is missing, and
each way it can fail exits with its code, says what to do, and leaves nothing half-written."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import copy_repo, edit_model_yaml
from tests.integration.test_gitops import main_in

SOURCE = "datasets/digits.csv"


def dvc(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True, timeout=120)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fork with its table in datasets/ (not committed) and a model.yaml that names it."""
    from sklearn.datasets import load_digits

    root = copy_repo(tmp_path / "repo")
    bunch = load_digits()
    rows = np.random.default_rng(0).choice(len(bunch.target), 300, replace=False)
    table = pd.DataFrame(bunch.data[rows], columns=[f"pixel_{i}" for i in range(64)])
    table["label"] = bunch.target[rows]
    (root / "datasets").mkdir()
    table.to_csv(root / SOURCE, index=False)
    edit_model_yaml(root, {"data.source": {"kind": "file", "path": SOURCE, "dvc": True}})
    return root


@pytest.fixture
def remote(root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "dvc-remote"
    dvc(root, "remote", "add", "-d", "storage", str(folder))
    return folder


def fresh_clone(root: Path) -> None:
    """What a CI runner has: the pointer, not the table, and no DVC cache."""
    (root / SOURCE).unlink()
    shutil.rmtree(root / ".dvc/cache", ignore_errors=True)


def objects(remote: Path) -> list[Path]:
    return [p for p in remote.rglob("*") if p.is_file()] if remote.is_dir() else []


def test_track_pushes_and_ingest_pulls_into_a_fresh_clone(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 0
    out = capsys.readouterr().out
    assert f"{SOURCE} (md5 " in out
    assert "pushed to the DVC remote 'storage'" in out
    assert (root / f"{SOURCE}.dvc").is_file()
    assert (root / "datasets/.gitignore").read_text() == "/digits.csv\n"
    assert len(objects(remote)) == 1
    # Idempotent: the same file again changes nothing, and the ignore entry is not repeated.
    assert main_in(root, "data", "track", SOURCE) == 0
    assert (root / "datasets/.gitignore").read_text() == "/digits.csv\n"

    fresh_clone(root)
    assert main_in(root, "ingest") == 0
    assert (root / SOURCE).is_file()
    for split in ("train", "validation", "test"):
        assert (root / f"data/digits/{split}.parquet").is_file()
    # Present and as recorded: nothing to pull, and ingest runs the same.
    assert main_in(root, "ingest") == 0


def test_track_without_a_remote_is_refused_before_anything_is_written(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 2
    err = capsys.readouterr().err
    assert "no default DVC remote is configured" in err
    assert "dvc remote add -d" in err
    assert not (root / f"{SOURCE}.dvc").exists()
    assert not (root / "datasets/.gitignore").exists()


def test_track_with_an_unknown_remote_name_is_refused(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE, "--remote", "nowhere") == 2
    assert "the DVC remote 'nowhere' is not configured (configured: storage)" in (
        capsys.readouterr().err
    )
    assert not (root / f"{SOURCE}.dvc").exists()


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("../outside.csv", "is not inside the repository"),
        ("data/digits/train.parquet", "is under data/"),
        ("models/digits/model.yaml", "is under models/"),
        ("datasets/none.csv", "is not a file"),
    ],
)
def test_track_refuses_a_path_it_cannot_own(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str], path: str, says: str
) -> None:
    (root.parent / "outside.csv").write_text("a,label\n1,0\n")
    assert main_in(root, "data", "track", path) == 2
    assert says in capsys.readouterr().err
    assert not list(root.rglob("*.csv.dvc"))
    assert not objects(remote)


def test_a_failed_push_leaves_no_pointer(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dvc(root, "remote", "add", "-d", "storage", str(blocker / "remote"))
    assert main_in(root, "data", "track", SOURCE) == 3
    err = capsys.readouterr().err
    assert "cannot push datasets/digits.csv to the DVC remote 'storage'" in err
    assert "credentials" in err
    assert not (root / f"{SOURCE}.dvc").exists()
    assert not (root / "datasets/.gitignore").exists()


def changed_after_tracking(root: Path) -> bytes:
    """Track the table, then change it: the pointer a failed re-track must leave as it is."""
    assert main_in(root, "data", "track", SOURCE) == 0
    with (root / SOURCE).open("a") as table:
        table.write(",".join(["0"] * 65) + "\n")
    return (root / f"{SOURCE}.dvc").read_bytes()


def test_a_cache_dvc_cannot_write_is_exit_3_and_keeps_the_pointer(
    root: Path, remote: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pointer = changed_after_tracking(root)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dvc(root, "cache", "dir", str(blocker / "cache"))
    capsys.readouterr()
    assert main_in(root, "data", "track", SOURCE) == 3
    err = capsys.readouterr().err
    assert f"DVC cannot record {SOURCE} in its cache: NotADirectoryError" in err
    assert "internal error" not in err
    assert (root / f"{SOURCE}.dvc").read_bytes() == pointer
    assert len(objects(remote)) == 1


def test_a_damaged_pointer_is_a_usage_error_and_stays_as_it_is(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = b"outs: [ {\n"
    (root / f"{SOURCE}.dvc").write_bytes(damaged)
    assert main_in(root, "data", "track", SOURCE) == 2
    err = capsys.readouterr().err
    assert f"DVC cannot record {SOURCE}: unable to read: '{SOURCE}.dvc'" in err
    assert "restored from git" in err
    assert (root / f"{SOURCE}.dvc").read_bytes() == damaged
    assert not objects(remote)


def test_a_file_absent_from_the_remote_is_exit_3(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 0
    shutil.rmtree(remote)
    remote.mkdir()  # the remote is there, the object is not (pushed elsewhere, or lost)
    fresh_clone(root)
    assert main_in(root, "ingest") == 3
    err = capsys.readouterr().err
    assert f"cannot pull the data source {SOURCE} from the DVC remote" in err
    assert f"mlops data track {SOURCE}" in err
    assert not (root / "data/digits").exists()


def test_an_unreachable_remote_is_exit_3(
    root: Path, remote: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 0
    dvc(root, "remote", "modify", "storage", "url", str(tmp_path / "no" / "such" / "remote"))
    fresh_clone(root)
    assert main_in(root, "ingest") == 3
    assert "cannot pull the data source" in capsys.readouterr().err
    assert not (root / "data/digits").exists()


def test_no_remote_at_all_when_pulling_is_a_configuration_error(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 0
    dvc(root, "remote", "remove", "storage")
    fresh_clone(root)
    assert main_in(root, "ingest") == 2
    assert "no default DVC remote is configured" in capsys.readouterr().err
    assert not (root / "data/digits").exists()


def test_a_source_without_its_pointer_is_refused(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "ingest") == 2
    err = capsys.readouterr().err
    assert f"{SOURCE}.dvc does not exist" in err
    assert f"mlops data track {SOURCE}" in err
    assert not (root / "data/digits").exists()


def test_a_local_copy_that_differs_from_the_pointer_is_refused(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 0
    with (root / SOURCE).open("a") as fh:
        fh.write(",".join(["0"] * 65) + "\n")
    assert main_in(root, "ingest") == 2
    err = capsys.readouterr().err
    assert f"{SOURCE} differs from the version {SOURCE}.dvc records" in err
    assert not (root / "data/digits").exists()


def test_a_dvc_source_under_a_folder_dvc_already_owns_is_refused(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_model_yaml(root, {"data.source": {"kind": "file", "path": "data/raw.csv", "dvc": True}})
    assert main_in(root, "ingest") == 2
    assert "a DVC-tracked source cannot live under data/" in capsys.readouterr().err


def credentials(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_data_pull_uses_the_ci_credential_for_the_pull_only(
    root: Path,
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CI's read credential is a .dvc/config.local, base64 in MLOPS_DVC_CREDENTIALS: here it
    carries the remote's real location (as it would carry a key), which .dvc/config lacks."""
    assert main_in(root, "data", "track", SOURCE) == 0
    dvc(root, "remote", "modify", "storage", "url", str(tmp_path / "not-here"))
    fresh_clone(root)
    local = f"['remote \"storage\"']\n    url = {remote}\n"
    monkeypatch.setenv("MLOPS_DVC_CREDENTIALS", credentials(local))
    assert main_in(root, "data", "pull") == 0
    assert f"data pull: {SOURCE} pulled" in capsys.readouterr().out
    assert (root / SOURCE).is_file()
    assert not (root / ".dvc/config.local").exists()  # gone once the pull is done
    assert main_in(root, "data", "pull") == 0
    assert "already present" in capsys.readouterr().out


def test_a_failed_pull_with_the_ci_credential_never_shows_it(
    root: Path,
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 0
    fresh_clone(root)
    shutil.rmtree(remote)
    secret_dir = tmp_path / "s3cr3t-location-0123"
    local = f"['remote \"storage\"']\n    url = {secret_dir}\n"
    monkeypatch.setenv("MLOPS_DVC_CREDENTIALS", credentials(local))
    assert main_in(root, "data", "pull") == 3
    captured = capsys.readouterr()
    assert "cannot pull the data source" in captured.err
    assert "s3cr3t-location-0123" not in captured.err + captured.out
    assert not (root / ".dvc/config.local").exists()


def test_a_credential_that_is_not_base64_is_refused(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_DVC_CREDENTIALS", "not base64 at all!")
    (root / f"{SOURCE}.dvc").write_text("outs:\n- md5: 0\n  path: digits.csv\n")
    (root / SOURCE).unlink()
    assert main_in(root, "data", "pull") == 2
    assert "MLOPS_DVC_CREDENTIALS is not base64" in capsys.readouterr().err
    assert not (root / ".dvc/config.local").exists()


def test_the_ci_credential_never_overwrites_a_config_local(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / ".dvc/config.local").write_text("# mine\n")
    (root / f"{SOURCE}.dvc").write_text("outs:\n- md5: 0\n  path: digits.csv\n")
    (root / SOURCE).unlink()
    monkeypatch.setenv("MLOPS_DVC_CREDENTIALS", credentials("[core]\n"))
    assert main_in(root, "data", "pull") == 2
    assert "mlops does not overwrite your DVC credentials" in capsys.readouterr().err
    assert (root / ".dvc/config.local").read_text() == "# mine\n"


def test_data_pull_of_a_source_not_kept_in_dvc_does_nothing(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_model_yaml(root, {"data.source": {"kind": "file", "path": SOURCE}})
    assert main_in(root, "data", "pull") == 0
    assert "not kept in DVC; nothing to pull" in capsys.readouterr().out


def test_a_tracked_source_not_marked_dvc_says_how_to_get_it(
    root: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_in(root, "data", "track", SOURCE) == 0
    edit_model_yaml(root, {"data.source": {"kind": "file", "path": SOURCE}})
    fresh_clone(root)
    assert main_in(root, "ingest") == 2
    err = capsys.readouterr().err
    assert f"data source {SOURCE} is missing here, and DVC tracks it" in err
    assert "dvc: true" in err
    assert not (root / "data/digits").exists()

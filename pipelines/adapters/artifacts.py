"""Atomic artifact writes and provenance records.

A stage that dies half-way must leave either the previous artifacts or the new ones, never a
mix, so every file goes through write-then-rename and every stage output folder is staged next
to its final place and swapped in whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipelines import __version__
from pipelines.config import SPLITS, Workspace
from pipelines.errors import ConfigError, InfraError

# Records that are read outside the stage that writes them, by file name. They live here, not
# only in their stages, so a reader (`mlops report`) need not import validate's and gate's
# pandas, numpy and LiteRT: the CI job that posts the report installs none of those.
SUMMARY = "summary.json"  # validate/
REFERENCE_STATS = "reference_stats.json"  # validate/
TFLITE = "model.tflite"  # train/: the candidate
PROVENANCE = "provenance.json"  # train/
PROFILE = "profile.json"  # train/: the reference profile, shipped beside the model
METRICS = "metrics.json"  # evaluate/
PREDICTIONS = "predictions.parquet"  # evaluate/
BLESSING = "blessing.json"  # gate/
RELEASE = "release.json"  # package/
SBOM = "sbom.cdx.json"  # package/
INFRA_BLESSING = "infra_blessing.json"  # verify/
TUNING = "tuning.json"  # tune/: the study's record (the study itself: tune/study.db)
# `mlops monitor`'s report; promote attaches the target environment's to the promotion body.
MONITOR_REPORT = "monitor.md"


def monitor_dir(root: Path, env: str) -> Path:
    """Where `mlops monitor --env env` writes by default: artifacts/monitor/<env>/."""
    return root / "artifacts" / "monitor" / env


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (temp file, then rename), world-readable, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; artifacts are meant to be read by others (CI, docs).
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically; see write_bytes."""
    write_bytes(path, text.encode("utf-8"))


def appendable(path: Path, flag: str) -> Path:
    """``path`` (a ``flag`` value) if text can be appended there: a file, or nothing yet. A
    folder there, or a file where one of its folders must be, is a usage error, refused
    before the command does anything."""
    blocker = path if path.is_dir() else next((p for p in path.parents if p.is_file()), None)
    if blocker is not None:
        raise ConfigError(
            f"{flag} {path}: {blocker} is {'a folder' if blocker == path else 'a file'}",
            hint=f"{flag} names a file to append to (e.g. $GITHUB_STEP_SUMMARY, $GITHUB_OUTPUT)",
        )
    return path


def append_text(path: Path, text: str) -> None:
    """Append UTF-8 text to a file a CI runner keeps (its step summary, its job outputs), creating
    it and its folder: the runner reads it whole after the step, so it is appended, not replaced.
    A write the system refuses (no space, no permission) is exit 3."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise InfraError(
            f"cannot append to {path}: {exc.strerror or exc}",
            hint="free space or fix the file's permissions, then re-run",
        ) from None


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically with sorted keys, so reruns give the same bytes; NaN is refused."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def invalidate(final: Path) -> None:
    """Remove a stage's previous output folder before the stage does its work.

    Every stage calls this first, so that a run that errors (bad input, a refused guard, an
    unreachable registry, Ctrl-C) leaves no record of an earlier run that a later stage could
    accept. One rename makes it atomic: a reader sees the old folder or none, never part of it.
    """
    if not final.exists():
        return
    trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.invalid."))
    final.replace(trash / final.name)
    shutil.rmtree(trash, ignore_errors=True)


def new_stage(final: Path) -> Path:
    """An empty folder beside ``final`` (same file system: swapping it in is a rename)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.new."))
    stage.chmod(0o755)  # mkdtemp makes 0700 folders; artifacts are for others to read too
    return stage


def swap_in(swaps: Sequence[tuple[Path, Path]]) -> None:
    """Replace each ``final`` folder by its ``stage`` (pairs of stage, final), two renames
    each, all of them or none: when a rename fails, those already swapped are put back."""
    moved: list[tuple[Path, Path | None]] = []  # (final, where its old tree went; None: none)
    try:
        for stage, final in swaps:
            old = final.parent / f".{final.name}.old.{os.getpid()}" if final.exists() else None
            if old is not None:
                final.replace(old)
            moved.append((final, old))
            stage.replace(final)
    except BaseException:
        for final, old in reversed(moved):
            if final.exists():  # the new tree got in: a copy, the stage is gone
                shutil.rmtree(final)
            if old is not None:
                old.replace(final)
        raise
    for _, old in moved:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``final``; on success it replaces ``final`` in two renames."""
    stage = new_stage(final)
    try:
        yield stage
        swap_in([(stage, final)])
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone already when it was swapped in


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(ws: Workspace) -> str:
    """sha256 over the split files: ties every downstream artifact to the exact data it saw."""
    digest = hashlib.sha256()
    for split in SPLITS:
        path = ws.split_path(split)
        if not path.is_file():
            raise ConfigError(
                f"{split} split: {path} does not exist", hint="run `mlops ingest` first"
            )
        digest.update(split.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def git_commit(root: Path) -> tuple[str, bool]:
    """(HEAD commit, dirty?) of the repository at ``root``; ("unknown", True) outside git."""
    import git  # gitpython spawns git lazily; importing it at module level costs start-up time

    try:
        repo = git.Repo(root, search_parent_directories=False)
        return repo.head.commit.hexsha, repo.is_dirty(untracked_files=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return "unknown", True


def data_md5(root: Path) -> str:
    """The dataset's DVC hash as recorded in ``data.dvc`` ("" before the first ingest)."""
    path = root / "data.dvc"
    if not path.is_file():
        return ""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    outs = doc.get("outs") or [{}]
    return str(outs[0].get("md5", ""))


def provenance(root: Path, params_hash: str, **extra: Any) -> dict[str, Any]:
    """Where an artifact came from: git commit and dirtiness, data and params hashes, plus extra."""
    commit, dirty = git_commit(root)
    record: dict[str, Any] = {
        "git_commit": commit,
        "git_dirty": dirty,
        "data_md5": data_md5(root),
        "params_sha256": params_hash,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "mlops_version": __version__,
    }
    record.update(extra)
    return record

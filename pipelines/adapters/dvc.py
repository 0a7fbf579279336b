"""DVC: the dataset pointer (data.dvc) and the stage cache (dvc.yaml + dvc.lock).

We use DVC's own hashing and lock file to decide which stages are unchanged, rather than a
cache of our own. Stages run in our process (so errors keep their exit codes); afterwards
``commit`` records their deps and outs in dvc.lock exactly as ``dvc repro`` would.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.adapters.artifacts import data_md5, write_text
from pipelines.config.schema import DVC_OWNED
from pipelines.errors import ConfigError, InfraError, MlopsError

# Sets DVC's default in our own process (a user's value wins); not a setting we read.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@contextlib.contextmanager
def _repo(root: Path) -> Iterator[Any]:
    if not (root / ".dvc").is_dir():
        raise ConfigError(
            f"{root} is not a DVC project (no .dvc/ folder)",
            hint="this template ships .dvc/; restore it with `git checkout .dvc`",
        )
    from dvc.repo import Repo

    # DVC logs "Adding..." banners at INFO; our own progress lines say the same thing once.
    logging.getLogger("dvc").setLevel(logging.WARNING)
    # DVC resolves targets against the working directory, not the repo it was given.
    with contextlib.chdir(root):
        repo = Repo(str(root))
        try:
            yield repo
        finally:
            repo.close()


def track_data(root: Path, *, force: bool) -> str:
    """Record ``data/`` in data.dvc if it changed (or ``force``); return the dataset md5."""
    with _refusals("data"), _repo(root) as repo:
        if force or not (root / "data.dvc").is_file() or repo.status(targets=["data.dvc"]):
            repo.add("data")
    return data_md5(root)


def changed_stages(root: Path, stages: list[str]) -> set[str]:
    """Names of the dvc.yaml stages whose deps, params or outs differ from dvc.lock."""
    with _repo(root) as repo:
        status = repo.status(targets=[f"dvc.yaml:{s}" for s in stages])
    return {key.split(":")[-1] for key in status}


def commit(root: Path, stage: str) -> None:
    """Record a stage's outputs in dvc.lock without rerunning it."""
    with _repo(root) as repo:
        repo.commit(f"dvc.yaml:{stage}", force=True)


# --- A data source kept in the team's DVC remote --------------------------------------------
#
# `mlops data track PATH` records a file with DVC (`PATH.dvc` beside it, committed) and pushes
# it to the configured remote (S3, GCS, Azure, SSH, a local folder); ingest pulls it where it is
# missing (a fresh clone, a CI runner). Pushes and pulls run `dvc` as a child process with a
# deadline: DVC's own network calls have per-remote timeouts only where the remote type
# supports them. DVC reads its credentials itself: .dvc/config.local (`dvc remote modify
# --local`), or the cloud SDKs' variables (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*) that
# the child inherits; mlops never reads, prints or passes them on its command line.

TRANSFER_TIMEOUT_S = 900  # a pull or push of one source file, remote round trips included
_CREDENTIAL_HINT = (
    "credentials: DVC reads them from .dvc/config.local (`dvc remote modify --local NAME ...`) "
    "or from the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_CONNECTION_STRING, ...)"
)


def dvc_file(path: str) -> str:
    """The pointer DVC writes beside a tracked file."""
    return f"{path}.dvc"


def _scrub(text: str) -> str:
    """DVC's message without credentials a remote URL may embed (scheme://user:secret@host)."""
    return re.sub(r"([a-z][a-z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)


def _dvc(root: Path, args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run `dvc ARGS` in the project with a deadline; an unreachable remote past it is exit 3."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=TRANSFER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InfraError(
            f"{what}: the DVC remote did not answer within {TRANSFER_TIMEOUT_S} s",
            hint="check that the remote is reachable from here (network, VPN, firewall)",
        ) from None


def _last_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return _scrub(" ".join(errors or lines[-3:]) or f"dvc exited with {done.returncode}")


def default_remote(root: Path, remote: str | None = None) -> str:
    """The DVC remote to use: ``remote`` if the project defines it, else the default one.
    None configured is a usage error (exit 2), raised before anything is written."""
    with _repo(root) as repo:
        names = sorted(repo.config.get("remote", {}))
        chosen = remote or repo.config.get("core", {}).get("remote")
    if chosen and chosen in names:
        return str(chosen)
    known = ", ".join(names) or "none"
    if remote:
        raise ConfigError(
            f"the DVC remote {remote!r} is not configured (configured: {known})",
            hint=f"add it: dvc remote add {remote} URL",
        )
    raise ConfigError(
        f"no default DVC remote is configured (configured: {known})",
        hint="add one and commit .dvc/config: dvc remote add -d storage s3://bucket/path "
        "(or gs://, azure://, ssh://, a folder)",
    )


def _not_pulled(path: str, done: subprocess.CompletedProcess[str]) -> MlopsError:
    message = _last_error(done)
    return InfraError(
        f"cannot pull the data source {path} from the DVC remote: {message}",
        hint=f"check that the remote is reachable from here and holds the file (`mlops data "
        f"track {path}` where it was added pushes it); {_CREDENTIAL_HINT}",
    )


def pull_source(root: Path, path: str) -> bool:
    """Make the DVC-tracked source ``path`` present and as its .dvc file records it: pulled
    from the remote when it is missing here. True when it was pulled.

    A missing pointer, or a local copy that differs from the recorded version, is a usage
    error (exit 2): CI would ingest something else. A remote that is unreachable or does not
    hold the file is exit 3 (InfraError), saying what to check.
    """
    pointer = root / dvc_file(path)
    if not pointer.is_file():
        raise ConfigError(
            f"data.source.path {path} is marked `dvc: true` but {dvc_file(path)} does not exist",
            hint=f"record it with DVC and push it to the remote: mlops data track {path}",
        )
    if (root / path).is_file():
        with _repo(root) as repo:
            changed = repo.status(targets=[dvc_file(path)])
        if not changed:
            return False
        raise ConfigError(
            f"{path} differs from the version {dvc_file(path)} records",
            hint=f"record this version (and push it): mlops data track {path}; or restore "
            f"the recorded one: dvc checkout {dvc_file(path)}",
        )
    default_remote(root)  # none configured: exit 2, saying how to add one
    done = _dvc(root, ["pull", "--", dvc_file(path)], f"pulling {path}")
    if done.returncode != 0 or not (root / path).is_file():
        raise _not_pulled(path, done)
    return True


@dataclass(frozen=True)
class Tracked:
    """A file recorded with DVC: its pointer, its md5, the remote it was pushed to."""

    path: str
    pointer: str
    md5: str
    remote: str


def track_source(root: Path, path: str, remote: str | None = None) -> Tracked:
    """Record ``path`` (a file inside the repository) with DVC and push it to ``remote`` (the
    default remote when None); what `mlops init` and `mlops data track` call.

    Writes ``PATH.dvc`` (commit it) and a ``.gitignore`` entry beside the file (core.no_scm:
    DVC does not touch .gitignore here), so the table itself never reaches git. Any failure
    once DVC may have rewritten the pointer (the add, the push, its deadline, Ctrl-C) restores
    the pointer as it was, so nothing claims a version the remote does not hold; running it
    again retries.
    """
    target = _source_file(root, path)
    name = default_remote(root, remote)
    pointer = root / dvc_file(path)
    before = pointer.read_bytes() if pointer.is_file() else None
    try:
        _record(root, path)
        done = _dvc(root, ["push", "--remote", name, "--", dvc_file(path)], f"pushing {path}")
        if done.returncode != 0:
            raise InfraError(
                f"cannot push {path} to the DVC remote {name!r}: {_last_error(done)}",
                hint=f"check that the remote is reachable and writable from here; "
                f"{_CREDENTIAL_HINT}",
            )
    except BaseException:  # Ctrl-C included: a half-done track must not leave a new pointer
        _restore(pointer, before)
        raise
    _ignore(target)
    outs = yaml.safe_load(pointer.read_text())["outs"][0]
    return Tracked(path, dvc_file(path), str(outs["md5"]), name)


def _record(root: Path, path: str) -> None:
    """`dvc add PATH`."""
    with _refusals(path), _repo(root) as repo:
        repo.add(path)


@contextlib.contextmanager
def _refusals(path: str) -> Iterator[None]:
    """What DVC refuses while recording ``path`` (a corrupt pointer, overlapping outputs) is a
    usage error, a cache it cannot write exit 3: neither is a bug in mlops."""
    from dvc.exceptions import DvcException

    try:
        yield
    except DvcException as exc:
        raise ConfigError(
            f"DVC cannot record {path}: {_scrub(str(exc))}",
            hint=f"`dvc add {path}` shows DVC's own account; a damaged {dvc_file(path)} can "
            "be restored from git",
        ) from None
    except OSError as exc:
        raise InfraError(
            f"DVC cannot record {path} in its cache: {type(exc).__name__}: {exc}",
            hint="the DVC cache (.dvc/cache, or `dvc cache dir`) must be a writable folder "
            "with room for the file; fix it and re-run",
        ) from None


def _restore(pointer: Path, before: bytes | None) -> None:
    if before is None:
        pointer.unlink(missing_ok=True)
    else:
        pointer.write_bytes(before)


def _source_file(root: Path, path: str) -> Path:
    """``path`` as a file inside the repository, outside the folders DVC outputs own."""
    target = (root / path).resolve()
    if not target.is_relative_to(root.resolve()) or Path(path).is_absolute():
        raise ConfigError(
            f"{path} is not inside the repository {root}",
            hint="copy the file into the repository first, e.g. datasets/",
        )
    rel = target.relative_to(root.resolve())
    if rel.parts[:1] and rel.parts[0] in (*DVC_OWNED, ".dvc", ".git", "models"):
        raise ConfigError(
            f"{path} is under {rel.parts[0]}/, which holds generated or tracked files",
            hint="keep a data source in a folder of its own, e.g. datasets/",
        )
    if not target.is_file():
        raise ConfigError(f"{path} is not a file", hint="name a CSV or Parquet file")
    return target


def _ignore(target: Path) -> None:
    """Add ``/<name>`` to the .gitignore beside the file, once, as DVC does with git."""
    gitignore = target.parent / ".gitignore"
    entry = f"/{target.name}"
    lines = gitignore.read_text().splitlines() if gitignore.is_file() else []
    if entry not in lines:
        write_text(gitignore, "\n".join([*lines, entry]) + "\n")


def pull_with_credentials(root: Path, path: str, credentials: str | None) -> bool:
    """``pull_source``, with ``credentials`` (base64 of a .dvc/config.local: CI's read-only
    data credential) in .dvc/config.local for the pull's duration only, readable by this user
    alone, and removed afterwards whatever happens. Without credentials, DVC's own
    configuration and the environment's cloud variables serve."""
    if not credentials:
        return pull_source(root, path)
    try:
        text = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigError(
            "MLOPS_DVC_CREDENTIALS is not base64 of a .dvc/config.local",
            hint="store `base64 -w0 .dvc/config.local` (written by `dvc remote modify --local`)",
        ) from None
    local = root / ".dvc" / "config.local"
    if local.exists():
        raise ConfigError(
            f"{local} exists: mlops does not overwrite your DVC credentials",
            hint="unset MLOPS_DVC_CREDENTIALS here (DVC reads config.local itself), or move it",
        )
    secrets = [v.strip() for _, _, v in (ln.partition("=") for ln in text.splitlines()) if v]
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return pull_source(root, path)
    except MlopsError as exc:
        # The message quotes DVC; a credential must not reach a log through it.
        for value in (s for s in secrets if len(s) >= 4):
            exc.message = exc.message.replace(value, "***")
        raise
    finally:
        local.unlink(missing_ok=True)

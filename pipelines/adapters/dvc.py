"""DVC: the dataset pointer (data.dvc) and the stage cache (dvc.yaml + dvc.lock).

We use DVC's own hashing and lock file to decide which stages are unchanged, rather than a
cache of our own. Stages run in our process (so errors keep their exit codes); afterwards
``commit`` records their deps and outs in dvc.lock exactly as ``dvc repro`` would.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.adapters.artifacts import data_md5
from pipelines.errors import ConfigError

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
    with _repo(root) as repo:
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

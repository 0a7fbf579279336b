"""Optuna studies and their storage: the default SQLite file under artifacts/<model>/tune/, or a
PostgreSQL database shared by many workers. Optuna and SQLAlchemy are imported lazily.

Both are Optuna's RDBStorage, because it is the storage with a heartbeat: a worker killed in
the middle of a trial stops beating, and the next worker to start a trial marks it FAIL and
queues a retry (RetryHeartbeatStaleTrialCallback). Optuna 5's JournalStorage has no heartbeat,
so a killed worker's trial would stay RUNNING forever there.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.config import TuningConfig, Workspace, inside
from pipelines.errors import ConfigError, InfraError

# How long connecting to PostgreSQL may take before the database counts as unreachable.
CONNECT_TIMEOUT_S = 10
# How long a SQLite writer waits for another worker's write lock before it errors.
SQLITE_BUSY_TIMEOUT_S = 60
_POSTGRES = ("postgresql", "postgresql+psycopg")


def default_url(ws: Workspace) -> str:
    """The local study file: SQLite under artifacts/<model>/tune/."""
    return f"sqlite:///{ws.artifacts('tune') / 'study.db'}"


def scrub(url: str) -> str:
    """``url`` with its password masked, for every message and record."""
    # Up to the last "@": a password may hold an unencoded "@" of its own.
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


def check_url(ws: Workspace, url: str) -> str:
    """The storage URL, refused unless it is PostgreSQL (via psycopg 3) or a SQLite file
    inside the repository; ``postgresql://`` is given psycopg's driver name."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is not None and parsed.drivername in _POSTGRES and parsed.host and parsed.database:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed is not None and parsed.drivername == "sqlite" and parsed.database:
        path = Path(parsed.database)
        path = path if path.is_absolute() else ws.root / path
        inside(ws.root, path, "--storage")
        # Absolute: checked against the repository, it must not be opened from the current
        # folder instead (mlops runs from any folder below the root).
        return f"sqlite:///{path.resolve()}"
    raise ConfigError(
        f"--storage {scrub(url)!r} is not a study storage mlops accepts",
        hint="use postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE (scripts/infra.sh "
        "prints one), or sqlite:///PATH inside the repository; nothing was written",
    )


def is_local(url: str) -> bool:
    """Whether the storage is the SQLite file (its folder must exist before connecting)."""
    return url.startswith("sqlite:")


@contextmanager
def open_storage(url: str, cfg: TuningConfig) -> Iterator[Any]:
    """Optuna's RDBStorage at ``url`` with the heartbeat of ``cfg``, closed on leaving: its
    connection pool would otherwise hold PostgreSQL connections until garbage collection.
    InfraError (exit 3, the password scrubbed) when the database cannot be reached."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    connect_args = (
        {"timeout": SQLITE_BUSY_TIMEOUT_S}
        if is_local(url)
        else {"connect_timeout": CONNECT_TIMEOUT_S}
    )
    if is_local(url):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        # Optuna flags the heartbeat and its retry callback "experimental" since 2.8 (their
        # interface may change); Optuna is pinned, and the tests exercise both.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": connect_args, "pool_pre_ping": True},
                heartbeat_interval=cfg.heartbeat_s,
                grace_period=cfg.grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=cfg.max_retry
                ),
            )
    except SQLAlchemyError as exc:
        raise InfraError(
            f"the study storage {scrub(url)} is unreachable: "
            f"{scrub(_without_password(str(exc).splitlines()[0], url))}",
            hint="start it (`scripts/infra.sh up` runs PostgreSQL locally and prints its DSN) "
            "or check --storage / MLOPS_TUNE_STORAGE; nothing was written",
        ) from None
    try:
        yield storage
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _without_password(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    password = make_url(url).password
    return text.replace(password, "***") if password else text


def sampler(cfg: TuningConfig, worker: int) -> Any:
    """The configured sampler, seeded per worker: equal seeds would make concurrent workers
    propose the same trials."""
    import optuna

    seed = cfg.seed + worker
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def pruner(cfg: TuningConfig) -> Any:
    """The configured pruner."""
    import optuna

    if cfg.pruner.kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.pruner.startup_trials, n_warmup_steps=cfg.pruner.warmup_epochs
    )


def suggest(trial: Any, cfg: TuningConfig) -> dict[str, Any]:
    """One value per dimension of the space, suggested by ``trial``."""
    out: dict[str, Any] = {}
    for name, dim in cfg.space.items():
        if dim.type == "categorical":
            out[name] = trial.suggest_categorical(name, list(dim.choices or []))
        elif dim.type == "int":
            out[name] = trial.suggest_int(
                name, int(dim.low or 0), int(dim.high or 0), step=int(dim.step or 1), log=dim.log
            )
        else:
            out[name] = trial.suggest_float(
                name, float(dim.low or 0), float(dim.high or 0), step=dim.step, log=dim.log
            )
    return out


def pruning_callback(trial: Any, metric: str) -> Any:
    """optuna-integration's callback: reports ``metric`` after every epoch and stops a trial
    the pruner gives up on. TFKerasPruningCallback subclasses ``tf.keras``'s Callback, which
    is the Keras that adapters/training.fit is given."""
    from optuna_integration import TFKerasPruningCallback  # type: ignore[import-untyped]

    return TFKerasPruningCallback(trial, metric)

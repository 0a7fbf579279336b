"""tune: an Optuna study over model.yaml's `tuning.space`, scored on the validation split.

Each trial is one ``adapters.training.fit`` with the trial's values over model.yaml's training
values, pruned epoch by epoch. K workers are K local processes sharing one study in its
storage (the SQLite file under artifacts/<model>/tune/, or PostgreSQL); each trains on one
thread. The study runs until it holds ``trials`` finished (completed or pruned) trials, so a
re-run resumes it, and the best values go to models/<name>/tuned.yaml, which every later
stage reads over model.yaml's `training` (so DVC re-runs train when they change).
"""

from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

from pipelines.adapters import plots, studies, training
from pipelines.adapters import workers as local
from pipelines.adapters.artifacts import TUNING, sha256_file, write_text
from pipelines.adapters.datasets import features_and_labels, read_table
from pipelines.config import (
    TUNED_FILE,
    TunedFile,
    TuningConfig,
    Workspace,
    load_model,
    read_settings,
    reveal,
)
from pipelines.core import tuning
from pipelines.errors import CheckFailed, ConfigError, InfraError, MlopsError
from pipelines.evidence import Provenance, TrialRow, TuningRecord, made, require_valid_data, save

TUNED_HEADER = """\
# Written by `mlops tune` (the best trial of the study below); commit it. Its `training` values
# take precedence over model.yaml's `training` section for every stage (train, the report...).
# Delete this file to train with model.yaml's values again.
"""


@dataclass(frozen=True)
class TuneResult:
    """The study, its finished trials, and the best trial's value and values."""

    study: str
    storage: str  # the password masked
    finished: int
    states: dict[str, int]
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    tuned_file: Path
    record: Path


@dataclass(frozen=True)
class _Search:
    """What a worker needs, picklable for a spawned process."""

    root: Path
    model: str
    url: str
    study: str
    trials: int
    timeout: float | None


def config_of(ws: Workspace) -> TuningConfig:
    """The model's tuning section; a usage error when it has none."""
    if ws.model.tuning is None:
        raise ConfigError(
            f"{ws.model_dir / 'model.yaml'} has no `tuning` section",
            hint="declare tuning.space (see README, 'tune'); nothing was written",
        )
    return ws.model.tuning


def run(
    ws: Workspace,
    trials: int | None = None,
    timeout: float | None = None,
    workers: int = 1,
    storage: str | None = None,
) -> TuneResult:
    """Run (or resume) the study until it has ``trials`` finished trials; write the best
    values to models/<name>/tuned.yaml and the study's record and plots under
    artifacts/<name>/tune/."""
    cfg = config_of(ws)
    problem = tuning.worker_problem(workers, local.usable_cpus())
    if problem:
        raise ConfigError(problem, hint="use fewer --workers; nothing was written")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be at least 1 (got {trials})")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be positive (got {timeout})")
    url = studies.check_url(
        ws, storage or reveal(read_settings().tune_storage) or studies.default_url(ws)
    )
    require_valid_data(ws)
    space_hash = tuning.space_sha256(
        ws.model, sha256_file(ws.model_dir / ws.model.training.architecture)
    )
    search = _Search(
        ws.root,
        ws.name,
        url,
        tuning.study_name(ws.name, space_hash),
        trials or cfg.trials,
        timeout if timeout is not None else cfg.timeout_s,
    )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Created here, once: workers racing to create it would collide in the storage.
    with studies.open_storage(url, cfg) as store:
        study = optuna.create_study(
            storage=store, study_name=search.study, direction=cfg.goal, load_if_exists=True
        )
        if not study.get_trials(deepcopy=False):
            start = tuning.starting_point(_untuned(ws).model.training, cfg.space)
            if start:
                study.enqueue_trial(start, skip_if_exists=True)
    if workers == 1:
        _optimize(search, 0)
    else:
        _optimize_together(search, workers, cfg)
    # Only now, every worker done: a stopped or failed run writes no tuned.yaml nor record.
    return _conclude(ws, cfg, search, space_hash)


def _optimize_together(search: _Search, workers: int, cfg: TuningConfig) -> None:
    """This process is worker 0, K-1 spawned processes the others (spawn, not fork:
    TensorFlow's threads do not survive a fork), so only K-1 pay a fresh start-up.

    However this process stops (SIGTERM, Ctrl-C, an error), it first stops every spawned
    worker (SIGTERM, then SIGKILL). Its own running trial is marked FAIL by Optuna as the
    error passes through the objective; a stopped worker's trial is left RUNNING for the
    heartbeat: once it is grace_s old, the next worker to start a trial (a resumed
    `mlops tune`) marks it FAIL and retries its values."""
    retry = f"a stopped worker's trial is retried once its heartbeat is {cfg.grace_s} s old"
    restore = local.stop_on_sigterm(
        "tuning",
        "the study keeps the finished trials, `mlops tune` resumes it",
        hint=f"tuned.yaml was not written; {retry}",
    )
    context = multiprocessing.get_context("spawn")
    others: list[tuple[int, multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for worker in range(1, workers):
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(target=_spawned, args=(search, worker, send))
            proc.start()
            send.close()  # the worker's end: it alone holds it now
            others.append((worker, proc, receive))
        _optimize(search, 0)
        outcomes = [_outcome(f"{i}/{workers}", proc, receive, retry) for i, proc, receive in others]
    finally:
        local.stop([proc for _, proc, _ in others])
        restore()
    for outcome in outcomes:
        _raise(outcome)


def _spawned(search: _Search, worker: int, send: Connection) -> None:
    """A spawned worker: its outcome goes back over ``send``. Ctrl-C reaches the whole
    process group; the parent alone handles it, stopping this process with SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with send:
        send.send(_work(search, worker))


def _outcome(
    who: str, proc: multiprocessing.process.BaseProcess, receive: Connection, retry: str
) -> tuple[int, str] | None:
    """A spawned worker's outcome, once it has ended; InfraError when it died without one."""
    proc.join()
    with receive:
        if proc.exitcode == 0:
            outcome: tuple[int, str] | None = receive.recv()
            return outcome
    raise InfraError(
        f"tuning worker {who} died ({local.exit_cause(proc.exitcode or 0)}): killed, out of "
        "memory, or an error it printed above",
        hint=f"re-run `mlops tune`: the study resumes, and {retry}; tuned.yaml was not written",
    )


def _untuned(ws: Workspace) -> Workspace:
    """The workspace with model.yaml's own training values (without tuned.yaml's)."""
    if ws.tuned is None:
        return ws
    return load_model(ws.root, ws.name, tuned=False)


def _raise(outcome: tuple[int, str] | None) -> None:
    if outcome is not None:
        code, message = outcome
        error = MlopsError(message)
        error.exit_code = code
        raise error


def _work(search: _Search, worker: int) -> tuple[int, str] | None:
    """One worker: trials until the study holds ``search.trials`` finished ones (or its
    timeout). Returns (exit code, message) of an error, which a spawned process cannot raise
    to its parent intact."""
    try:
        _optimize(search, worker)
    except MlopsError as exc:
        return exc.exit_code, str(exc)
    return None


def _optimize(search: _Search, worker: int) -> None:
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # model.yaml's values, not an earlier tuned.yaml's: a parameter that left the space must
    # train at what `train` will then use, or the best trial's score cannot be reproduced.
    ws = load_model(search.root, search.model, tuned=False)
    cfg = config_of(ws)
    split = {
        s: features_and_labels(ws, read_table(ws.split_path(s), s)) for s in ("train", "validation")
    }
    # One thread per worker: K workers use K cores, and a trial's fit stays deterministic.
    tf = training.import_tensorflow(1)
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    base = training.Hyper.of(ws)

    def objective(trial: Any) -> float:
        values = tuning.overrides(studies.suggest(trial, cfg))
        hyper = replace(
            base,
            **{k: v for k, v in values.items() if k != "params"},
            params={**base.params, **values["params"]},
        )
        fitted = training.fit(
            ws,
            tf.keras,
            split["train"],
            split["validation"],
            hyper,
            [studies.pruning_callback(trial, cfg.metric)],
        )
        return fitted.curves[cfg.metric][-1]

    with studies.open_storage(search.url, cfg) as store:
        study = optuna.load_study(
            study_name=search.study,
            storage=store,
            sampler=studies.sampler(cfg, worker),
            pruner=studies.pruner(cfg),
        )
        if len(study.get_trials(deepcopy=False, states=done)) >= search.trials:
            return
        study.optimize(
            objective,
            timeout=search.timeout,
            callbacks=[MaxTrialsCallback(search.trials, states=done)],
            gc_after_trial=True,
        )


def _conclude(ws: Workspace, cfg: TuningConfig, search: _Search, space_hash: str) -> TuneResult:
    import optuna

    with studies.open_storage(search.url, cfg) as store:
        study = optuna.load_study(study_name=search.study, storage=store)
        trials = study.get_trials(deepcopy=False)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        if not complete:
            raise CheckFailed(
                f"study {search.study} has no completed trial ({states})",
                hint="raise --timeout or --trials, or loosen the pruner; "
                "tuned.yaml was not written",
            )
        best = study.best_trial
        importances, note = _importances(optuna, study, len(complete))
    out = ws.artifacts("tune")
    tuned_path = ws.model_dir / TUNED_FILE
    tuned = TunedFile(
        study=search.study,
        metric=cfg.metric,
        direction=cfg.goal,
        value=_value(best.value),
        best_trial=best.number,
        finished_trials=tuning.finished(states),
        states=states,
        importances=importances,
        space_sha256=space_hash,
        training=tuning.tuned_values(best.params),
    )
    history = [
        TrialRow(
            number=t.number,
            state=t.state.name,
            value=t.value,
            params=t.params,
            epochs_run=len(t.intermediate_values),
        )
        for t in trials
    ]
    record = TuningRecord(
        model=ws.name,
        study=search.study,
        storage=studies.scrub(search.url),
        sampler=cfg.sampler,
        pruner=cfg.pruner.kind,
        metric=cfg.metric,
        direction=cfg.goal,
        target_trials=search.trials,
        states=states,
        best_trial=best.number,
        best_value=_value(best.value),
        best_params=best.params,
        importances=importances,
        importance_note=note,
        history=history,
        tuned_file=str(tuned_path.relative_to(ws.root)),
        space_sha256=space_hash,
        provenance=made(Provenance, ws.root, space_hash),
    )
    plots.optimization_history(
        [(t.number, t.value, t.state.name) for t in trials if t.value is not None],
        cfg.metric,
        cfg.goal == "maximize",
        out / "history.png",
    )
    if importances:
        plots.importances(importances, out / "importances.png")
    save(out / TUNING, record)
    body = yaml.safe_dump(tuned.model_dump(mode="json", exclude_none=True), sort_keys=False)
    write_text(tuned_path, TUNED_HEADER + body)
    return TuneResult(
        study=search.study,
        storage=record.storage,
        finished=tuned.finished_trials,
        states=states,
        best_trial=best.number,
        best_value=_value(best.value),
        best_params=best.params,
        tuned_file=tuned_path,
        record=out / TUNING,
    )


def _value(value: float | None) -> float:
    if value is None:  # a COMPLETE trial always has one; the type does not say so
        raise ValueError("a completed trial without a value")
    return float(value)


def _importances(optuna: Any, study: Any, complete: int) -> tuple[dict[str, float], str]:
    """The fANOVA importances, or none (with why) when too few trials completed to fit them."""
    if complete < 2:
        return {}, f"{complete} completed trial(s): importances need at least 2"
    try:
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (RuntimeError, ValueError) as exc:
        return {}, f"not computed: {exc}"
    return {k: float(v) for k, v in values.items()}, "fANOVA over the completed trials"

"""Pure decisions of `mlops tune`: which study a search belongs to, how many workers may run,
and how a trial's values become training values and tuned.yaml."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pipelines.config.schema import (
    PARAMS_PREFIX,
    TUNABLE,
    ModelConfig,
    SearchDimension,
    TrainingConfig,
    TunedValues,
)


def space_sha256(model: ModelConfig, architecture_sha256: str) -> str:
    """What makes two trials comparable: the space, the metric, the data settings, the
    network's code and seed. A change starts a new study instead of mixing incompatible
    trials into the old one (whose values would no longer mean the same)."""
    if model.tuning is None:
        raise ValueError("the model has no tuning section")
    payload = {
        "space": model.tuning.model_dump(mode="json")["space"],
        "metric": model.tuning.metric,
        "data": model.data.model_dump(mode="json"),
        "architecture": architecture_sha256,
        "seed": model.training.seed,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def study_name(model: str, space_hash: str) -> str:
    """The study's name in the storage: the model and its space's hash."""
    return f"{model}-{space_hash[:12]}"


def worker_problem(workers: int, cpus: int) -> str | None:
    """Why ``workers`` local processes cannot run on ``cpus`` usable CPUs, if they cannot.
    Each worker trains on one thread; more workers than CPUs only take turns, slower."""
    if workers < 1:
        return f"--workers must be at least 1 (got {workers})"
    if workers > cpus:
        return f"--workers {workers} is more than the {cpus} CPU(s) this process may use"
    return None


def overrides(values: dict[str, Any]) -> dict[str, Any]:
    """A trial's ``{space name: value}`` as training values: ``{"learning_rate": ..,
    "params": {key: ..}}``."""
    out: dict[str, Any] = {"params": {}}
    for name, value in values.items():
        if name in TUNABLE:
            out[name] = value
        elif name.startswith(PARAMS_PREFIX):
            out["params"][name[len(PARAMS_PREFIX) :]] = value
        else:
            raise ValueError(f"unknown tuning target {name!r}")
    return out


def tuned_values(values: dict[str, Any]) -> TunedValues:
    """The best trial's values as tuned.yaml's `training` section."""
    return TunedValues.model_validate(overrides(values))


def finished(states: dict[str, int]) -> int:
    """Trials that count toward the target: completed or pruned (a failed one is retried)."""
    return states.get("COMPLETE", 0) + states.get("PRUNED", 0)


def fits(dim: SearchDimension, value: Any) -> bool:
    """Whether ``value`` is one the dimension can suggest."""
    if dim.type == "categorical":
        return any(value == c and type(value) is type(c) for c in dim.choices or [])
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if dim.type == "int" and not isinstance(value, int):
        return False
    low, high = dim.low or 0, dim.high or 0
    if not low <= value <= high:
        return False
    return (
        dim.step is None or abs((value - low) / dim.step - round((value - low) / dim.step)) < 1e-9
    )


def starting_point(training: TrainingConfig, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """model.yaml's own values, where the space can suggest them: the study's first trial, so
    the search's best is never worse on validation than what training would use untuned."""
    current: dict[str, Any] = {k: getattr(training, k) for k in TUNABLE}
    current.update({PARAMS_PREFIX + k: v for k, v in training.params.items()})
    return {name: current[name] for name, dim in space.items() if fits(dim, current.get(name))}

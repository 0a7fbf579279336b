"""Capacity at the edges: the peak's pods read from the rendered objects themselves, and the
node pool from the environment state, their quantities parsed by the Kubernetes client's own
parser; then core/capacity.py packs them.

Reading the pods from what rendering produced (not from model.yaml again) means the capacity
check and the committed YAML cannot disagree: whatever a template sets, the check counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipelines.config import EnvironmentState, NodePool
from pipelines.core import capacity
from pipelines.core.capacity import Plan, Pod, Pool
from pipelines.errors import CheckFailed, ConfigError

# Kinds whose pods the peak counts; anything else with a pod template is refused rather than
# silently left out of the sum.
SCALED = ("Deployment", "StatefulSet")
POD_TEMPLATES = ("DaemonSet", "CronJob", "ReplicaSet", "Pod")


def quantity(value: Any, what: str) -> Decimal:
    """A Kubernetes quantity (``4``, ``3500m``, ``16Gi``) as a number, by the client's parser."""
    from kubernetes.utils.quantity import parse_quantity

    try:
        parsed: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: {value!r} is not a Kubernetes quantity ({exc})") from None
    return parsed


def millicores(value: Any, what: str) -> int:
    """CPU in whole millicores, rounded up as the scheduler does (0.1m is 1m)."""
    return math.ceil(quantity(value, what) * 1000)


def bytes_of(value: Any, what: str) -> int:
    """Memory in whole bytes, rounded up."""
    return math.ceil(quantity(value, what))


def pool_of(pool: NodePool) -> Pool:
    """The node pool of an environment state, in integers."""
    return Pool(
        millicores(pool.cpu, "node_pool.cpu"),
        bytes_of(pool.memory, "node_pool.memory"),
        pool.count,
    )


@dataclass(frozen=True)
class Shape:
    """What one pod of a workload requests, and what its limits add up to."""

    cpu: int
    memory: int
    limit_cpu: int
    limit_memory: int


def _shape(spec: Mapping[str, Any], what: str) -> Shape:
    """A pod's effective requests: its containers' sum, or its largest init container if that
    is more (the scheduler reserves the larger); a missing request defaults to the limit, as
    the API server does."""

    def amounts(container: Mapping[str, Any]) -> tuple[int, int, int, int]:
        res = container.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        name = f"{what} container {container.get('name', '?')}"
        return (
            millicores(requests.get("cpu", limits.get("cpu", 0)), name),
            bytes_of(requests.get("memory", limits.get("memory", 0)), name),
            millicores(limits.get("cpu", 0), name),
            bytes_of(limits.get("memory", 0), name),
        )

    main = [amounts(c) for c in spec.get("containers") or []]
    init = [amounts(c) for c in spec.get("initContainers") or []]
    total = [sum(a[k] for a in main) for k in range(4)]
    largest = [max((a[k] for a in init), default=0) for k in range(4)]
    return Shape(*(max(t, i) for t, i in zip(total, largest, strict=True)))


def _surge(spec: Mapping[str, Any], replicas: int) -> int:
    """Extra pods a rolling update may start: maxSurge (default 25%, rounded up)."""
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return math.ceil(int(surge[:-1]) * replicas / 100)
    return int(surge)


@dataclass(frozen=True)
class Peak:
    """The pods at peak, and their limits added up (what the ResourceQuota's limits see)."""

    pods: tuple[Pod, ...]
    limit_cpu: int
    limit_memory: int


def peak(objects: Iterable[Mapping[str, Any]]) -> Peak:
    """Every pod the rendered objects can run at once: each Deployment at its HPA's maximum
    (both colors: a switch runs both) plus a rolling update's surge, and each Job's pods."""
    objects = list(objects)
    hpa_max = {
        (o["spec"]["scaleTargetRef"]["kind"], o["spec"]["scaleTargetRef"]["name"]): int(
            o["spec"]["maxReplicas"]
        )
        for o in objects
        if o.get("kind") == "HorizontalPodAutoscaler"
    }
    pods: list[Pod] = []
    limit_cpu = limit_memory = 0
    for obj in sorted(objects, key=lambda o: (str(o["kind"]), str(o["metadata"]["name"]))):
        kind, name = str(obj["kind"]), str(obj["metadata"]["name"])
        spec = obj.get("spec") or {}
        if kind in SCALED:
            replicas = hpa_max.get((kind, name), int(spec.get("replicas", 1)))
            count = replicas + (_surge(spec, replicas) if kind == "Deployment" else 0)
        elif kind == "Job":
            count = int(spec.get("parallelism", 1))
        elif kind in POD_TEMPLATES:
            raise ConfigError(
                f"{kind}/{name}: the capacity check does not model {kind} pods",
                hint="render Deployments, StatefulSets and Jobs only, or extend "
                "pipelines/adapters/capacity.py",
            )
        else:
            continue
        shape = _shape(spec["template"]["spec"], f"{kind}/{name}")
        pods += [Pod(f"{name}/{k + 1}", shape.cpu, shape.memory) for k in range(count)]
        limit_cpu += count * shape.limit_cpu
        limit_memory += count * shape.limit_memory
    return Peak(tuple(pods), limit_cpu, limit_memory)


def quota_hard(pool: NodePool) -> dict[str, str]:
    """The namespace's ResourceQuota: requests up to the pool's capacity, limits up to that
    times limits_overcommit (every template sets limits, so the quota can bound them)."""
    p = pool_of(pool)
    ratio = Decimal(str(pool.limits_overcommit))
    cpu, memory = p.cpu * p.nodes, p.memory * p.nodes
    return {
        "requests.cpu": capacity.format_cpu(cpu),
        "requests.memory": capacity.format_memory(memory),
        "limits.cpu": capacity.format_cpu(math.floor(cpu * ratio)),
        "limits.memory": capacity.format_memory(math.floor(memory * ratio)),
    }


@dataclass(frozen=True)
class Report:
    """The packing of an environment's peak, and its limits against the quota's."""

    environment: str
    plan: Plan
    peak: Peak
    limits_quota: tuple[int, int]  # CPU millicores, memory bytes

    @property
    def limits_fit(self) -> bool:
        """Whether the peak's limits stay within the ResourceQuota's."""
        cpu, memory = self.limits_quota
        return self.peak.limit_cpu <= cpu and self.peak.limit_memory <= memory

    @property
    def fits(self) -> bool:
        """Whether the peak can be scheduled and admitted."""
        return self.plan.fits and self.limits_fit

    def lines(self) -> list[str]:
        """The verdict: the packing's summary, and the limits against the quota."""
        cpu, memory = self.limits_quota
        f = capacity
        return [
            f"{self.environment}: {f.summary(self.plan)}",
            f"{self.environment}: limits at peak {f.format_cpu(self.peak.limit_cpu)} CPU, "
            f"{f.format_memory(self.peak.limit_memory)} of the quota's {f.format_cpu(cpu)}, "
            f"{f.format_memory(memory)}: " + ("within" if self.limits_fit else "OVER the quota"),
        ]


def report(state: EnvironmentState, objects: Iterable[Mapping[str, Any]]) -> Report:
    """Pack the peak of ``objects`` (an environment's rendering) onto its node pool."""
    pool = pool_of(state.node_pool)
    found = peak(objects)
    try:
        plan = capacity.pack(found.pods, pool)
    except capacity.CapacityError as exc:
        raise ConfigError(
            f"{state.environment}: {exc}",
            hint="lower the model's deploy.resources in model.yaml, or declare larger nodes "
            f"in node_pool of environments/{state.environment}.yaml",
        ) from None
    ratio = Decimal(str(state.node_pool.limits_overcommit))
    quota = (
        math.floor(pool.cpu * pool.nodes * ratio),
        math.floor(pool.memory * pool.nodes * ratio),
    )
    return Report(state.environment, plan, found, quota)


def require_fits(state: EnvironmentState, objects: Iterable[Mapping[str, Any]]) -> Report:
    """Refuse (exit 1, with the plan) a state whose peak the node pool cannot hold."""
    from pipelines.core.report import table

    r = report(state, objects)
    if not r.fits:
        raise CheckFailed(
            "the peak does not fit the node pool:\n"
            + "\n".join(r.lines())
            + "\n"
            + table(["node", "pod", "cpu", "memory"], capacity.rows(r.plan)),
            hint=f"declare more or larger nodes in node_pool of environments/"
            f"{state.environment}.yaml (a reviewed commit), or lower the models' "
            "deploy.max_replicas or resources; nothing was committed",
        )
    return r

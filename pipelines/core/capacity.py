"""Capacity: pack an environment's pods at peak onto its node pool, with as few nodes as can be.

Seed 004's scheduling model, a mixed-integer program solved by HiGHS (scipy.optimize.milp):
binary x[i, j] puts pod i on node j, binary y[j] uses node j; minimise the nodes used, every
pod on exactly one node, and on every node the pods' CPU and memory requests within what the
node offers (y[j] * capacity). y[j] >= y[j+1] breaks the symmetry between identical nodes, so
the solver does not explore the same packing under every renumbering of the nodes.
Identical pods are merged: their x[i, j] summed is one integer per shape and node (see
``_solve``), the same program without the symmetry between interchangeable pods.

Pure: quantities arrive as integers (millicores and bytes); adapters/capacity.py parses them
from the rendered objects and the environment state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce


class CapacityError(ValueError):
    """The input cannot be packed at all: a pod larger than a node, an empty pool."""


@dataclass(frozen=True)
class Pod:
    """One pod at peak: its name and its requests (CPU in millicores, memory in bytes)."""

    name: str
    cpu: int
    memory: int


@dataclass(frozen=True)
class Pool:
    """What one node offers to pods, and how many nodes there are (or may be)."""

    cpu: int
    memory: int
    nodes: int


@dataclass(frozen=True)
class Plan:
    """A packing with the fewest nodes: the node (0-based) of every pod. It fits when those
    nodes are no more than the pool has."""

    pods: tuple[Pod, ...]
    pool: Pool
    placement: tuple[int, ...]
    optimal: bool  # the solver proved that fewer nodes cannot hold the pods

    @property
    def nodes_used(self) -> int:
        """The number of nodes the packing uses."""
        return len(set(self.placement))

    @property
    def fits(self) -> bool:
        """Whether the pool has that many nodes."""
        return self.nodes_used <= self.pool.nodes

    def node_load(self, node: int) -> tuple[int, int]:
        """The CPU (millicores) and memory (bytes) placed on ``node``."""
        placed = [p for p, n in zip(self.pods, self.placement, strict=True) if n == node]
        return sum(p.cpu for p in placed), sum(p.memory for p in placed)


def lower_bound(pods: Sequence[Pod], pool: Pool) -> int:
    """No packing uses fewer nodes than the total of either resource needs."""
    if not pods:
        return 0
    cpu = math.ceil(sum(p.cpu for p in pods) / pool.cpu)
    memory = math.ceil(sum(p.memory for p in pods) / pool.memory)
    return max(1, cpu, memory)


def check(pods: Sequence[Pod], pool: Pool) -> None:
    """Refuse what no number of nodes could hold: an empty pool, a pod larger than a node."""
    if pool.nodes < 1 or pool.cpu <= 0 or pool.memory <= 0:
        raise CapacityError(
            f"the node pool is empty: {pool.nodes} node(s) of {pool.cpu}m CPU and "
            f"{pool.memory} bytes of memory"
        )
    for p in pods:
        if p.cpu < 0 or p.memory < 0:
            raise CapacityError(f"pod {p.name} requests a negative amount")
        if p.cpu > pool.cpu or p.memory > pool.memory:
            raise CapacityError(
                f"pod {p.name} requests {format_cpu(p.cpu)} CPU and {format_memory(p.memory)} "
                f"memory, more than one node offers ({format_cpu(pool.cpu)} CPU, "
                f"{format_memory(pool.memory)}): no number of nodes can hold it"
            )


def first_fit_decreasing(pods: Sequence[Pod], pool: Pool) -> list[int]:
    """The classic heuristic (largest first, onto the first node with room), unbounded in
    nodes: the MILP's upper bound, and the benchmark's baseline."""
    order = sorted(
        range(len(pods)),
        key=lambda i: (-max(pods[i].cpu / pool.cpu, pods[i].memory / pool.memory), i),
    )
    free: list[list[int]] = []
    placement = [0] * len(pods)
    for i in order:
        p = pods[i]
        room = (j for j, (cpu, memory) in enumerate(free) if p.cpu <= cpu and p.memory <= memory)
        j = next(room, len(free))
        if j == len(free):
            free.append([pool.cpu, pool.memory])
        free[j][0] -= p.cpu
        free[j][1] -= p.memory
        placement[i] = j
    return placement


def pack(pods: Sequence[Pod], pool: Pool, time_limit: float = 20.0) -> Plan:
    """The packing with the fewest nodes (the MILP), whether or not the pool has them, so a
    change that does not fit still shows how many nodes it needs. Raises CapacityError for
    what no number of nodes of this size could hold. Should the time limit strike first, the
    plan is the best packing found (the solver's or the heuristic's) and says it is unproven."""
    check(pods, pool)
    pods = tuple(pods)
    if not pods:
        return Plan(pods, pool, (), True)
    heuristic = first_fit_decreasing(pods, pool)
    # The heuristic's count bounds the optimum from above, so it is the number of node
    # variables the program needs; the program then finds the minimum below it.
    placement, optimal = _solve(pods, pool, max(heuristic) + 1, time_limit)
    if placement is None:  # the limit struck before HiGHS found a packing of its own
        placement = heuristic
    return Plan(pods, pool, _renumbered(placement), optimal)


def _scaled(values: Sequence[int]) -> list[int]:
    """Integers divided by their greatest common divisor: memory in bytes (2**34 per node)
    becomes small exact integers, so the solver's tolerances cannot overfill a node."""
    g = reduce(math.gcd, values, 0) or 1
    return [v // g for v in values]


def _solve(
    pods: Sequence[Pod], pool: Pool, nodes: int, time_limit: float
) -> tuple[list[int] | None, bool]:
    """Seed 004's program, with the pods of one shape merged: their binary x[pod, node]
    summed is an integer n[shape, node] in [0, count]. Identical pods are interchangeable, so
    this is the same program without the symmetry between them (200 pods of 5 shapes: 170
    integer variables instead of 6,800 binary ones; measured in bench/capacity.py). Where
    every pod differs, it is exactly binary x[pod, node]."""
    # Imported here: `mlops --help` and rendering need not load scipy.
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    shapes = sorted({(p.cpu, p.memory) for p in pods}, reverse=True)
    index = {shape: t for t, shape in enumerate(shapes)}
    count = [0] * len(shapes)
    for p in pods:
        count[index[(p.cpu, p.memory)]] += 1
    k, m = len(shapes), nodes
    cpu = _scaled([c for c, _ in shapes] + [pool.cpu])
    memory = _scaled([mem for _, mem in shapes] + [pool.memory])
    # Variables: n[t, j] at t * m + j, then y[j] at k * m + j.
    nx = k * m
    width = nx + m
    cost = np.concatenate([np.zeros(nx), np.ones(m)])
    t_of = np.repeat(np.arange(k), m)  # the shape of variable v < nx
    j_of = np.tile(np.arange(m), k)  # its node
    rows = []
    # Every pod on exactly one node: sum_j n[t, j] = count[t].
    every = coo_array((np.ones(nx), (t_of, np.arange(nx))), shape=(k, width))
    rows.append(LinearConstraint(every, count, count))
    # Per node and resource: sum_t r_t n[t, j] - capacity * y[j] <= 0.
    for resource in (cpu, memory):
        weights = np.array(resource[:k], dtype=float)[t_of]
        data = np.concatenate([weights, np.full(m, -float(resource[k]))])
        r = np.concatenate([j_of, np.arange(m)])
        c = np.concatenate([np.arange(nx), nx + np.arange(m)])
        rows.append(LinearConstraint(coo_array((data, (r, c)), shape=(m, width)), -np.inf, 0))
    # Nothing on an unused node: n[t, j] - count[t] * y[j] <= 0 (tightens the relaxation).
    link = coo_array(
        (
            np.concatenate([np.ones(nx), -np.array(count, dtype=float)[t_of]]),
            (np.tile(np.arange(nx), 2), np.concatenate([np.arange(nx), nx + j_of])),
        ),
        shape=(nx, width),
    )
    rows.append(LinearConstraint(link, -np.inf, 0))
    if m > 1:
        # Symmetry breaking between identical nodes: y[j] - y[j+1] >= 0.
        q = np.arange(m - 1)
        order = coo_array(
            (
                np.concatenate([np.ones(m - 1), -np.ones(m - 1)]),
                (np.concatenate([q, q]), np.concatenate([nx + q, nx + q + 1])),
            ),
            shape=(m - 1, width),
        )
        rows.append(LinearConstraint(order, 0, np.inf))
    upper = np.concatenate([np.array(count, dtype=float)[t_of], np.ones(m)])
    result = milp(
        cost,
        constraints=rows,
        integrality=np.ones(width, dtype=np.int8),
        bounds=Bounds(0, upper),
        options={"time_limit": time_limit},
    )
    # status 0: optimal; 1: time or iteration limit (x holds the best packing found, if any).
    if result.x is None:
        return None, False
    n = np.rint(np.asarray(result.x[:nx])).astype(int).reshape(k, m)
    # Hand the pods of each shape out to the nodes in the counts the solver chose.
    slots = {t: [j for j in range(m) for _ in range(int(n[t, j]))] for t in range(k)}
    placement = [slots[index[(p.cpu, p.memory)]].pop() for p in pods]
    _verify(pods, pool, placement)
    return placement, result.status == 0


def _verify(pods: Sequence[Pod], pool: Pool, placement: Sequence[int]) -> None:
    """The solver works in floating point; the packing is checked in exact integers."""
    for node in set(placement):
        on = [p for p, j in zip(pods, placement, strict=True) if j == node]
        if sum(p.cpu for p in on) > pool.cpu or sum(p.memory for p in on) > pool.memory:
            raise ArithmeticError(f"the solver overfilled node {node}")


def _renumbered(placement: Sequence[int]) -> tuple[int, ...]:
    """Nodes numbered 0, 1, ... in order of first use, so equal packings print alike."""
    seen: dict[int, int] = {}
    return tuple(seen.setdefault(j, len(seen)) for j in placement)


def format_cpu(millicores: int) -> str:
    """Millicores as a Kubernetes quantity: whole cores when exact (4), else 3500m."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(amount: int) -> str:
    """Bytes as a Kubernetes quantity, in the largest binary unit that divides it exactly."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount and amount % size == 0:
            return f"{amount // size}{unit}"
    return str(amount)


def summary(plan: Plan) -> str:
    """One line: how many nodes the peak needs, and whether the pool has them."""
    pool, used = plan.pool, plan.nodes_used
    total_cpu = sum(p.cpu for p in plan.pods)
    total_memory = sum(p.memory for p in plan.pods)
    proof = "minimum" if plan.optimal else "best found within the time limit, not proven minimum"
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    return (
        f"{len(plan.pods)} pods at peak request {format_cpu(total_cpu)} CPU and "
        f"{format_memory(total_memory)}: {used} node(s) of {format_cpu(pool.cpu)} CPU, "
        f"{format_memory(pool.memory)} ({proof}); the pool has {pool.nodes}: {verdict}"
    )


def rows(plan: Plan) -> list[list[str]]:
    """The placement as table rows: node, pod, CPU and memory requests, then node totals."""
    out = []
    for node in range(plan.nodes_used):
        cpu, memory = plan.node_load(node)
        name = f"node-{node}" + ("" if node < plan.pool.nodes else " (missing)")
        for p, j in zip(plan.pods, plan.placement, strict=True):
            if j == node:
                out.append([name, p.name, format_cpu(p.cpu), format_memory(p.memory)])
        out.append(
            [
                name,
                "(total)",
                f"{format_cpu(cpu)} of {format_cpu(plan.pool.cpu)}",
                f"{format_memory(memory)} of {format_memory(plan.pool.memory)}",
            ]
        )
    return out

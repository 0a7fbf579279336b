"""The capacity check's solve time for 200 pods: the MILP (core/capacity.py, scipy's milp with
HiGHS) vs first-fit-decreasing, the heuristic it replaces, side by side: nodes used and time.

Two instances of 200 pods on 4-CPU, 16Gi nodes:
- blue-green: 10 models of 5 sizes, both colors at their HPA maximum (9) plus a surge pod;
- random: 200 pods of independent random CPU and memory requests (seeded), the hard case.
"""

from __future__ import annotations

import argparse
import random
import time

from _common import header, median, table

GI, MI = 2**30, 2**20


def blue_green() -> list[tuple[str, int, int]]:
    sizes = [(100, 128 * MI), (250, 512 * MI), (500, 1 * GI), (1000, 2 * GI), (1500, 6 * GI)]
    pods = []
    for model in range(10):
        cpu, memory = sizes[model % len(sizes)]
        for color in ("blue", "green"):
            pods += [(f"m{model}-{color}/{k}", cpu, memory) for k in range(10)]
    return pods


def random_pods(seed: int = 4) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    return [(f"p{i}", rng.randint(50, 2000), rng.randint(64, 6144) * MI) for i in range(200)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--time-limit", type=float, default=20.0, help="MILP limit, seconds (the default)"
    )
    args = parser.parse_args()

    from pipelines.core import capacity
    from pipelines.core.capacity import Pod, Pool

    pool = Pool(cpu=4000, memory=16 * GI, nodes=100)
    capacity.pack([Pod("warm-up", 1, 1)], pool)  # scipy's import is not the solve's time
    header("Capacity: 200 pods, MILP (HiGHS) vs first-fit-decreasing")
    rows = []
    for name, spec in (("blue-green", blue_green()), ("random", random_pods())):
        pods = [Pod(*p) for p in spec]
        assert len(pods) == 200
        milp_times, ffd_times = [], []
        plan = None
        for _ in range(args.runs):
            start = time.perf_counter()
            placement = capacity.first_fit_decreasing(pods, pool)
            ffd_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            plan = capacity.pack(pods, pool, time_limit=args.time_limit)
            milp_times.append(time.perf_counter() - start)
        assert plan is not None
        ffd_nodes = max(placement) + 1
        bound = capacity.lower_bound(pods, pool)
        milp_s, ffd_s = median(milp_times), median(ffd_times)
        proof = "proven" if plan.optimal else f"time limit ({args.time_limit:g} s)"
        rows += [
            [
                name,
                "MILP (scipy milp, HiGHS)",
                plan.nodes_used,
                proof,
                f"{milp_s:.3f}",
                f"{milp_s / ffd_s:,.0f}x",
            ],
            [name, "first-fit-decreasing", ffd_nodes, "-", f"{ffd_s:.4f}", "1x"],
        ]
        rows.append([name, "lower bound (total / node)", bound, "-", "-", "-"])
    print(table(["instance", "method", "nodes", "optimality", "median s", "time vs FFD"], rows))
    print(f"\n{args.runs} runs each; medians.")


if __name__ == "__main__":
    main()

"""Model server throughput: ours vs a Flask + Keras ``model.predict`` server (the baseline) vs a
constant answer in our own stack (the floor the HTTP stack sets).

All three run here as child processes, one worker each, pinned to one core, and are loaded in
turn by the same wrk command (pinned to the other core) with the same single-example body.
Also measures the serving image: its size and build time, cold (no layer cache) and re-used.

Goals (issue 3): at least 50x the baseline's throughput and 70% of the floor.
Needs: wrk (apt), a trained model (`make run`, or this script trains one in a temporary clone),
and for the image part a docker engine and registry (`make infra-up`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    LATENCY,
    MLOPS,
    PY,
    ROOT,
    bench_env,
    free_port,
    header,
    latency_row,
    model_dir,
    model_server,
    require_tools,
    running_server,
    table,
    workload,
    wrk,
    wrk_medians,
)

HERE = Path(__file__).resolve().parent


def serve(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    port: int,
    script: Path,
    args: argparse.Namespace,
) -> dict[str, float]:
    with running_server(cmd, env, port):
        wrk(port, script, 2, args.connections)  # warm-up: first requests pay for lazy setup
        result = wrk_medians(port, script, args.seconds, args.connections, args.runs)
    print(f"{name}: {result}", file=sys.stderr)
    return result


def image_figures(repo: Path) -> list[list[str]]:
    """Cold build (no layer cache), then the re-use path of `mlops package`."""
    import docker

    from pipelines.adapters import images, pydeps
    from pipelines.adapters.artifacts import sha256_file
    from pipelines.config import load_model
    from pipelines.evidence import candidate_artifact
    from pipelines.stages import package

    ws = load_model(repo, "digits")
    base, _ = package.resolve_base_image(ws)
    client = docker.from_env()
    arch = client.info()["Architecture"]
    locked = pydeps.lock(ROOT, arch)
    files = package.context_files(
        ws, package.signature(ws, sha256_file(candidate_artifact(ws))), locked
    )
    with tempfile.TemporaryDirectory() as tmp:
        package._write_context(Path(tmp), files, locked.directory)
        start = time.perf_counter()
        image_id = images.build(
            client,
            Path(tmp),
            "mlops-bench/digits:cold",
            {"BASE_IMAGE": base},
            lambda _: None,
            nocache=True,
        )
        cold = time.perf_counter() - start
    size = client.images.get(image_id).attrs["Size"]
    client.images.remove("mlops-bench/digits:cold", force=True)
    rows = [
        ["image size, uncompressed", f"{size / 1e6:.0f} MB", "< 150 MB"],
        ["build, cold (no layer cache)", f"{cold:.1f} s", ""],
    ]
    if (repo / "artifacts/digits/gate/blessing.json").is_file():
        subprocess.run([MLOPS, "package"], cwd=repo, check=True, capture_output=True)
        start = time.perf_counter()
        subprocess.run([MLOPS, "package"], cwd=repo, check=True, capture_output=True)
        rows.append(
            [
                "`mlops package`, inputs already pushed (re-used)",
                f"{time.perf_counter() - start:.1f} s",
                "",
            ]
        )
        from pipelines import evidence

        record = evidence.load(
            repo / "artifacts/digits/package/release.json", evidence.PackagedRelease
        )
        rows.append(
            [
                "image size, compressed in the registry",
                f"{record.compressed_size_bytes / 1e6:.0f} MB",
                "< 150 MB",
            ]
        )
    return rows


def breakdown(
    mdir: Path,
    body: bytes,
    env: dict[str, str],
    script: Path,
    args: argparse.Namespace,
    floor: dict[str, float],
) -> list[list[str]]:
    """Per piece: its cost in a tight loop here, and what it adds to the floor's time per
    request when the floor server does it on every request under the same load."""
    sys.path.insert(0, str(HERE / "servers"))
    from constant import pieces

    rows = []
    for name, work in pieces(mdir).items():
        if name == "none":
            continue
        for _ in range(1000):
            work(body)
        start = time.perf_counter()
        for _ in range(20000):
            work(body)
        alone = (time.perf_counter() - start) / 20000 * 1e6
        port = free_port()
        loaded = serve(
            f"floor + {name}",
            [PY, str(HERE / "servers/constant.py"), str(mdir), str(port), name],
            env,
            port,
            script,
            args,
        )
        added = 1e6 / loaded["rps"] - 1e6 / floor["rps"]
        rows.append([name, f"{alone:.1f}", f"{added:.1f}", f"{added / alone:.1f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measured wrk run")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--no-image", action="store_true", help="skip the image figures")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also load the floor with one piece of the model path at a time, "
        "and compare what each piece adds under load with its cost in isolation",
    )
    args = parser.parse_args()

    require_tools("wrk", "taskset")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo, body, script = workload(tmp)
        mdir = model_dir(repo, tmp / "model")
        env = bench_env()
        results = {}
        port = free_port()
        results["ours"] = serve("ours", *model_server(mdir, port, env), port, script, args)
        port = free_port()
        results["floor"] = serve(
            "floor",
            [PY, str(HERE / "servers/constant.py"), str(mdir), str(port)],
            env,
            port,
            script,
            args,
        )
        port = free_port()
        results["baseline"] = serve(
            "baseline",
            [
                PY,
                str(HERE / "servers/flask_keras.py"),
                str(repo / "artifacts/digits/train/model.keras"),
                str(port),
            ],
            env,
            port,
            script,
            args,
        )
        if args.breakdown:
            breakdown_rows = breakdown(mdir, body.encode(), env, script, args, results["floor"])
        image_rows = [] if args.no_image else image_figures(repo)

    ours, floor, base = results["ours"], results["floor"], results["baseline"]
    header(
        f"Model server: {args.connections} connections, 1 worker each, {args.runs} x "
        f"{args.seconds} s wrk runs (medians)",
        "server on core 0, wrk on core 1",
    )
    print(
        table(
            ["server", *LATENCY, "vs baseline", "vs floor"],
            [
                latency_row(
                    name, r, f"{r['rps'] / base['rps']:.1f}x", f"{r['rps'] / floor['rps']:.0%}"
                )
                for name, r in (
                    ("ours: LiteRT in Starlette/uvicorn", ours),
                    ("floor: constant answer, same stack", floor),
                    ("baseline: Flask + Keras model.predict", base),
                )
            ],
        )
    )
    print()
    print(
        table(
            ["goal", "measured", "met"],
            [
                [
                    ">= 50x the baseline's throughput",
                    f"{ours['rps'] / base['rps']:.1f}x",
                    "yes" if ours["rps"] >= 50 * base["rps"] else "no",
                ],
                [
                    ">= 70% of the floor",
                    f"{ours['rps'] / floor['rps']:.0%}",
                    "yes" if ours["rps"] >= 0.7 * floor["rps"] else "no",
                ],
            ],
        )
    )
    if args.breakdown:
        budget = 1e6 / (0.7 * floor["rps"]) - 1e6 / floor["rps"]
        print(
            f"\n### Where the time goes: each piece alone, then added to the floor under load\n"
            f"\nThe 70% goal leaves {budget:.0f} us per request for the whole model path.\n"
        )
        print(
            table(
                ["piece", "alone (us)", "added under load (us)", "under load / alone"],
                breakdown_rows,
            )
        )
    if image_rows:
        print()
        print(table(["image", "measured", "goal"], image_rows))


if __name__ == "__main__":
    main()

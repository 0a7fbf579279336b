"""Model server under slow clients: p99 and throughput of normal clients with and without
1,000 slow connections open (issue 8, item 7).

The server runs on core 0; `wrk` (8 normal keep-alive clients) and the slow clients run on core
1. A slow client connects, then dribbles the head of a request one byte a second, like
slowloris; when the server's header timeout closes it, it reconnects, so about 1,000 stay open
all along. Loopback only, and bounded: the slow clients stop with the benchmark.

Needs: wrk (apt), a trained model (`make run`, or this script trains one in a temporary clone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from _common import (
    LATENCY,
    PY,
    bench_env,
    free_port,
    header,
    latency_row,
    median,
    model_dir,
    model_server,
    post_script,
    require_tools,
    running_server,
    table,
    workload,
    wrk,
    wrk_medians,
)

HEAD = (
    b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: bench\r\n"
    b"Content-Type: application/json\r\nX-Slow: " + b"s" * 10_000
)


async def _one_slow_client(port: int, start: float, stop: float, stats: dict[str, int]) -> None:
    # Staggered starts spread the header timeouts, so the count stays level instead of all
    # connections closing and reopening together every timeout.
    await asyncio.sleep(start)
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(1)
            continue
        stats["open"] += 1
        try:
            for i in range(len(HEAD)):
                if time.monotonic() >= stop or reader.at_eof():
                    break
                writer.write(HEAD[i : i + 1])
                await writer.drain()
                try:  # a second per byte, or until the server closes the connection
                    if await asyncio.wait_for(reader.read(65536), 1.0) == b"":
                        break
                except TimeoutError:
                    pass
                else:
                    break  # the server answered (408) and closes
        except OSError:
            pass
        finally:
            stats["open"] -= 1
            stats["closed_by_server"] += time.monotonic() < stop
            writer.close()


async def _slow_clients(port: int, count: int, seconds: float) -> None:
    stats = {"open": 0, "closed_by_server": 0, "connect_errors": 0}
    stop = time.monotonic() + seconds
    tasks = [
        asyncio.create_task(_one_slow_client(port, 10 * i / count, stop, stats))
        for i in range(count)
    ]
    samples: list[int] = []
    await asyncio.sleep(15)  # measure only while wrk runs
    while time.monotonic() < stop:
        await asyncio.sleep(0.5)
        samples.append(stats["open"])
    await asyncio.gather(*tasks)
    print(
        json.dumps({**stats, "open_min": min(samples), "open_median": median(samples)}), flush=True
    )


def slow_client_worker(port: int, count: int, seconds: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    asyncio.run(_slow_clients(port, count, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measured wrk run")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per condition")
    parser.add_argument("--connections", type=int, default=8, help="normal wrk clients")
    parser.add_argument("--slow", type=int, default=1000, help="slow connections to hold open")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="a packaged model folder (model.tflite, "
        "signature.json) to serve instead of training one",
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("PORT", "COUNT", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    from pipelines.serving.contract import Env

    if args.worker:
        slow_client_worker(int(args.worker[0]), int(args.worker[1]), float(args.worker[2]))
        return
    require_tools("wrk", "taskset")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.model_dir:
            mdir = args.model_dir
            body = json.dumps({"instances": [[float(i % 17) for i in range(64)]]})
            script = post_script(tmp / "post.lua", body)
        else:
            repo, _, script = workload(tmp)
            mdir = model_dir(repo, tmp / "model")
        port = free_port()
        cmd, env = model_server(
            mdir, port, bench_env(), **{Env.MAX_CONNECTIONS: str(args.slow + 1024)}
        )
        with running_server(cmd, env, port, stop_timeout=60) as server:
            wrk(port, script, 2, args.connections)  # warm-up
            quiet = wrk_medians(port, script, args.seconds, args.connections, args.runs)
            span = 18 + args.runs * (args.seconds + 1)
            slow = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "1",
                    PY,
                    __file__,
                    "--worker",
                    str(port),
                    str(args.slow),
                    str(span),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(15)  # all connected (staggered over 10 s), some already reopened
            loaded = wrk_medians(port, script, args.seconds, args.connections, args.runs)
            out, _ = slow.communicate(timeout=span + 60)
            held = json.loads(out.strip().splitlines()[-1])
            alive = server.poll() is None
    header(
        f"Model server under slow clients: {args.connections} normal connections, "
        f"{args.runs} x {args.seconds} s wrk runs (medians)",
        "server on core 0, wrk and the slow clients on core 1",
    )
    print(
        table(
            ["slow connections open", *LATENCY],
            [
                latency_row("none", quiet),
                latency_row(
                    f"{held['open_median']:,.0f} (at least {held['open_min']:,.0f}; "
                    f"{held['closed_by_server']:,} closed by the header timeout and reopened)",
                    loaded,
                ),
            ],
        )
    )
    print(
        f"\nServer still running afterwards: {'yes' if alive else 'NO'}; "
        f"p99 ratio {loaded['p99'] / quiet['p99']:.2f}x, "
        f"throughput ratio {loaded['rps'] / quiet['rps']:.0%}"
    )


if __name__ == "__main__":
    main()

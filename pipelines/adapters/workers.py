"""Local training workers: N separate processes of ``mlops train --worker`` on this machine,
each given its TF_CONFIG, talking over loopback. Their output is relayed line by line; when one
fails, the others are stopped, since a collective cannot finish without every worker."""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import pipelines
from pipelines.core.distribution import local_cluster
from pipelines.errors import InfraError

# How long stopped workers may take to exit on SIGTERM before they are killed.
STOP_TIMEOUT_S = 10.0
TAIL_LINES = 15

# A worker process: train's are commands (Popen), tune's spawned Python processes.
Worker = subprocess.Popen[str] | BaseProcess


@dataclass(frozen=True)
class WorkerFailure:
    """The first worker that failed: its index, exit code (negative: the signal) and last
    lines of output."""

    index: int
    returncode: int
    tail: tuple[str, ...]

    @property
    def cause(self) -> str:
        """The cause, as "exit code N" or "killed by signal N"."""
        return exit_cause(self.returncode)


def exit_cause(returncode: int) -> str:
    """A process's exit status (negative: the signal) as "exit code N" or "killed by signal N"."""
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which containers and taskset
    narrow), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports the kernel says are free now. All sockets are held
    open together so the kernel cannot hand out one port twice; another process could still
    take one before a worker binds it, and that worker then fails to start (exit 3, re-run)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def run_local(
    root: Path,
    argv: Sequence[str],
    workers: int,
    progress: Callable[[str], None],
) -> WorkerFailure | None:
    """Run ``python -m pipelines.cli <argv>`` as ``workers`` processes in ``root``, worker i
    with TF_CONFIG for index i on free loopback ports; wait for all. None when every worker
    exited 0, else the first failure (the others are stopped)."""
    ports = free_ports(workers)
    # The workers import the same pipelines package as this process, wherever it is installed.
    package_parent = str(Path(pipelines.__file__).resolve().parent.parent)
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    tails = [collections.deque[str](maxlen=TAIL_LINES) for _ in range(workers)]
    procs: list[subprocess.Popen[str]] = []

    def relay(index: int, stream: Sequence[str]) -> None:
        for line in stream:
            lines.put((index, line.rstrip("\n")))
        lines.put((index, None))

    restore = stop_on_sigterm("training", "no model was written", hint="re-run `mlops train`")
    try:
        for i in range(workers):
            # The environment is handed on, with the worker's own TF_CONFIG, and this
            # package first on the handed-on PYTHONPATH.
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            env["TF_CONFIG"] = local_cluster(ports, i).to_json()
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [package_parent, env.get("PYTHONPATH")])
            )
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", *argv],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            procs.append(proc)
            assert proc.stdout is not None
            threading.Thread(target=relay, args=(i, proc.stdout), daemon=True).start()
            progress(f"worker {i}/{workers}: started, pid {proc.pid}, 127.0.0.1:{ports[i]}")
        open_streams = workers
        failure: WorkerFailure | None = None
        while open_streams and failure is None:
            try:
                index, line = lines.get(timeout=0.5)
            except queue.Empty:
                failure = _first_failure(procs, tails)
                continue
            if line is None:
                open_streams -= 1
                procs[index].wait()
                failure = _first_failure(procs, tails)
                continue
            tails[index].append(line)
            # The workers' own progress lines already say which worker; TF's do not.
            progress(line if line.startswith("worker ") else f"worker {index}/{workers}| {line}")
        for proc in procs:
            if failure is None:
                proc.wait()
        return failure or _first_failure(procs, tails)
    finally:
        stop(procs)
        restore()


def stop_on_sigterm(what: str, aftermath: str, hint: str) -> Callable[[], None]:
    """While workers run, SIGTERM (a cancelled CI job, `kill`) raises InfraError in this
    process ("<what> stopped: ...; its workers were stopped; <aftermath>"), so that the caller
    stops the workers too rather than leaving them running without it. Returns what puts the
    previous handler back. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def terminated(signum: int, _frame: object) -> None:
        # Once: a second SIGTERM must not interrupt the stopping of the workers.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise InfraError(
            f"{what} stopped: mlops received signal {signum}; its workers were stopped; "
            f"{aftermath}",
            hint=hint,
        )

    previous = signal.signal(signal.SIGTERM, terminated)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _first_failure(
    procs: Sequence[subprocess.Popen[str]], tails: Sequence[collections.deque[str]]
) -> WorkerFailure | None:
    for i, proc in enumerate(procs):
        code = proc.poll()
        if code not in (None, 0):
            return WorkerFailure(i, int(code), tuple(tails[i]))
    return None


def stop(procs: Sequence[Worker]) -> None:
    """Stop every worker still running: SIGTERM, then SIGKILL to those still running
    STOP_TIMEOUT_S later (one deadline for all, not one per worker)."""
    for proc in procs:
        if not _ended(proc, 0):
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        if not _ended(proc, max(0.0, deadline - time.monotonic())):
            proc.kill()
            _ended(proc, None)
        if isinstance(proc, subprocess.Popen) and proc.stdout is not None:
            proc.stdout.close()


def _ended(proc: Worker, timeout: float | None) -> bool:
    """Whether ``proc`` exited (and was reaped) within ``timeout`` seconds (None: waits)."""
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    proc.join(timeout)
    return proc.exitcode is not None

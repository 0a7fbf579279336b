"""Multi-worker training's decisions: who the workers are (TF_CONFIG), who is the chief, and
whether a worker count can run here. Pure: the ports, the CPU count and the Job's index are
handed in by the callers that read them.

TF_CONFIG is TensorFlow's own description of a cluster (``{"cluster": {"worker": [host:port,
...]}, "task": {"type": "worker", "index": i}}``), read by MultiWorkerMirroredStrategy. Every
worker is a "worker"; index 0 is the chief, as TensorFlow treats it when no "chief" task is
listed, and the only one that writes the artifact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.config.schema import DNS_LABEL

CHIEF = 0
JOB_PORT = 2222  # the gRPC port every pod of the training Job listens on (TF's customary one)
# A worker's address: a DNS name or an IPv4 address, then a port.
_HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}$")


@dataclass(frozen=True)
class Cluster:
    """One worker's view of the cluster: every worker's host:port, and its own index."""

    workers: tuple[str, ...]
    index: int

    @property
    def size(self) -> int:
        """How many workers train together."""
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        """Whether this worker writes the artifact."""
        return self.index == CHIEF

    def tf_config(self) -> dict[str, Any]:
        """TensorFlow's TF_CONFIG for this worker."""
        return {
            "cluster": {"worker": list(self.workers)},
            "task": {"type": "worker", "index": self.index},
        }

    def to_json(self) -> str:
        """TF_CONFIG as the environment variable's value."""
        return json.dumps(self.tf_config(), sort_keys=True, separators=(",", ":"))


def local_cluster(ports: Sequence[int], index: int) -> Cluster:
    """Workers on this machine's loopback, one per port."""
    return checked([f"127.0.0.1:{p}" for p in ports], index)


def job_cluster(job: str, service: str, workers: int, index: int, port: int) -> Cluster:
    """The workers of a Kubernetes Indexed Job: pod ``<job>-<i>`` resolves as
    ``<job>-<i>.<service>`` through the headless Service in the pod's own namespace (the pod's
    hostname is ``<job>-<i>`` and its subdomain the Service)."""
    for what, name in (("job", job), ("service", service)):
        if not re.fullmatch(DNS_LABEL, name) or len(name) > 63:
            raise ValueError(f"{what} name {name!r} is not a DNS label")
    return checked([f"{job}-{i}.{service}:{port}" for i in range(workers)], index)


def checked(workers: Sequence[str], index: int) -> Cluster:
    """A cluster of ``workers`` seen by worker ``index``; ValueError saying what is wrong."""
    if len(workers) < 2:
        raise ValueError(f"a cluster needs at least 2 workers, not {len(workers)}")
    if len(set(workers)) != len(workers):
        raise ValueError(f"workers are listed more than once: {list(workers)}")
    for host in workers:
        if not _HOST_PORT.match(host) or not 1 <= int(host.rsplit(":", 1)[1]) <= 65535:
            raise ValueError(f"worker address {host!r} is not host:port")
    if not 0 <= index < len(workers):
        raise ValueError(f"worker index {index} is outside 0..{len(workers) - 1}")
    return Cluster(tuple(workers), index)


def parse_tf_config(text: str) -> Cluster:
    """A TF_CONFIG value as a Cluster of workers; ValueError when it is not one this project
    writes (JSON, workers only, an index among them)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"cluster", "task"}:
        raise ValueError("TF_CONFIG must be an object with cluster and task only")
    cluster, task = doc.get("cluster"), doc.get("task")
    if not isinstance(cluster, dict) or set(cluster) != {"worker"}:
        raise ValueError("TF_CONFIG's cluster must list workers only (no chief, ps or evaluator)")
    hosts = cluster["worker"]
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ValueError("TF_CONFIG's cluster.worker must be a list of host:port strings")
    if not isinstance(task, dict) or task.get("type") != "worker":
        raise ValueError('TF_CONFIG\'s task must be {"type": "worker", "index": i}')
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise ValueError("TF_CONFIG's task.index must be an integer")
    return checked(hosts, index)


def workers_problem(workers: int, cpus: int | None, batch_size: int) -> str | None:
    """Why ``workers`` local workers cannot train here (None when they can): at least one;
    no more than the CPUs this process may use, since each worker is a busy process and
    collectives between oversubscribed processes crawl (``cpus`` None: each worker has its own
    machine, as a Job's pods do); and a global batch that splits evenly,
    so every worker's share is batch_size / workers examples."""
    if workers < 1:
        return f"workers must be at least 1, not {workers}"
    if cpus is not None and workers > cpus:
        return f"{workers} workers need {workers} CPUs; this machine lets mlops use {cpus}"
    if batch_size % workers:
        return (
            f"batch_size {batch_size} does not split evenly across {workers} workers "
            "(the global batch is shared: each worker takes batch_size / workers)"
        )
    return None

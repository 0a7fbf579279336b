"""Applying a rendered Job (and its Service) to a cluster with the Kubernetes client.

A Job's pod template cannot be changed once created, and a finished Job would not run again:
applying one means deleting the previous Job of that name (its pods with it) and creating it
anew. A Service is created, or replaced in place. Every request has a timeout; the credential
is the kubeconfig (KUBECONFIG, as the client reads it) or the pod's service account.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipelines.config import read_settings
from pipelines.errors import CheckFailed, ConfigError, InfraError

REQUEST_TIMEOUT_S = 30
# How long a deleted Job may take to be gone (its pods' grace period) before we give up.
DELETE_TIMEOUT_S = 120.0


def connect() -> Any:
    """An API client for the current kube context, or the pod's service account."""
    try:
        from kubernetes import client, config

        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=read_settings().kubeconfig or None
            )
        except Exception:  # no kubeconfig: perhaps this runs inside a pod
            config.load_incluster_config()  # type: ignore[no-untyped-call]
    except Exception as exc:  # every failure here means "no cluster to talk to"
        raise InfraError(
            f"no Kubernetes credentials: {type(exc).__name__}: {str(exc)[:200]}",
            hint="point KUBECONFIG at a kubeconfig for the training cluster (CI: the "
            "environment's secret), or run inside the cluster",
        ) from None
    return client


def apply(
    client: Any, objects: Sequence[Mapping[str, Any]], progress: Callable[[str], None]
) -> None:
    """Create or replace each Service, then delete and create each Job, in that order (the
    workers resolve each other through the Service as soon as they start)."""
    core, batch = client.CoreV1Api(), client.BatchV1Api()
    ordered = sorted(objects, key=lambda o: o["kind"] != "Service")
    for obj in ordered:
        kind, meta = obj["kind"], obj["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        try:
            if kind == "Service":
                _apply_service(client, core, obj)
            elif kind == "Job":
                _recreate_job(client, batch, obj, progress)
            else:
                raise ConfigError(f"cannot apply a {kind}: only Jobs and Services")
        except client.exceptions.ApiException as exc:
            raise _api_error(exc, f"{kind} {namespace}/{name}") from None
        except Exception as exc:
            if isinstance(exc, ConfigError | InfraError):
                raise
            # urllib3's connection errors, timeouts and TLS failures
            raise InfraError(
                f"the Kubernetes API did not answer for {kind} {namespace}/{name}: "
                f"{type(exc).__name__}: {str(exc)[:200]}",
                hint="check the kubeconfig's server and that the cluster is reachable, re-run",
            ) from None
        progress(f"applied {kind} {namespace}/{name}")


def _apply_service(client: Any, core: Any, obj: Mapping[str, Any]) -> None:
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    try:
        core.read_namespaced_service(name, namespace, _request_timeout=REQUEST_TIMEOUT_S)
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_service(namespace, obj, _request_timeout=REQUEST_TIMEOUT_S)
        return
    core.patch_namespaced_service(name, namespace, obj, _request_timeout=REQUEST_TIMEOUT_S)


def _recreate_job(
    client: Any, batch: Any, obj: Mapping[str, Any], progress: Callable[[str], None]
) -> None:
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    try:
        batch.delete_namespaced_job(
            name,
            namespace,
            propagation_policy="Foreground",
            _request_timeout=REQUEST_TIMEOUT_S,
        )
        progress(f"deleting the previous Job {namespace}/{name}")
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + DELETE_TIMEOUT_S
    while True:
        try:
            batch.read_namespaced_job(name, namespace, _request_timeout=REQUEST_TIMEOUT_S)
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                break
            raise
        if time.monotonic() > deadline:
            raise InfraError(
                f"the previous Job {namespace}/{name} was not gone after {DELETE_TIMEOUT_S:.0f} s",
                hint=f"see `kubectl -n {namespace} describe job {name}`, then re-run",
            )
        time.sleep(2)
    batch.create_namespaced_job(namespace, obj, _request_timeout=REQUEST_TIMEOUT_S)


def _api_error(exc: Any, what: str) -> Exception:
    status = int(getattr(exc, "status", 0) or 0)
    reason = str(getattr(exc, "reason", "") or "")
    if status in (401, 403):
        return ConfigError(
            f"the cluster refused the credential for {what} ({status} {reason})",
            hint="the kubeconfig's user needs create, get, patch and delete on Jobs and "
            "Services in the training namespace",
        )
    if status == 404:
        return ConfigError(
            f"the cluster has no place for {what} (404 {reason})",
            hint="create the training namespace, and in it the claim and the Secret the Jobs "
            "name (README, 'Training on a cluster')",
        )
    if status in (400, 409, 422):
        return CheckFailed(
            f"the cluster refused {what} ({status} {reason}): {str(exc.body)[:300]}",
            hint="the rendered object does not suit this cluster (its Kubernetes version "
            "must be at least gitops.yaml's kubernetes_version)",
        )
    return InfraError(
        f"the Kubernetes API failed for {what} ({status} {reason})",
        hint="re-run; if it persists, check the cluster's API server",
    )

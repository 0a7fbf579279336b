"""Applying a rendered Job (and its Service) to a cluster with the Kubernetes client.

A Job's pod template cannot be changed once created, and a finished Job would not run again:
applying one means deleting the previous Job of that name (its pods with it) and creating it
anew. A Service is created, or replaced in place. Every request has a timeout; the credential
is the kubeconfig (KUBECONFIG, else ~/.kube/config) or, in a pod, its service account.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.config import read_settings
from pipelines.errors import CheckFailed, ConfigError, InfraError

REQUEST_TIMEOUT_S = 30
# How long a deleted Job may take to be gone (its pods' grace period) before we give up.
DELETE_TIMEOUT_S = 120.0


def connect() -> Any:
    """An API client for the configured kubeconfig, else (in a pod) its service account.

    A kubeconfig that is configured but does not load is that error, not a reason to try the
    service account: falling back would hide a typo'd path or a malformed file behind "not in
    a cluster"."""
    from kubernetes import client, config

    settings = read_settings()
    files = settings.kubeconfig_files
    if files:
        _load_kubeconfig(config, files)
    elif settings.kubernetes_service_host:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ConfigError(
                "no kubeconfig is configured and the pod's service account does not load: "
                f"{type(exc).__name__}: {str(exc)[:200]}",
                hint="mount the service account token (automountServiceAccountToken), or "
                "point KUBECONFIG at a kubeconfig for the training cluster",
            ) from None
    else:
        raise ConfigError(
            "no Kubernetes credentials: KUBECONFIG is unset, there is no ~/.kube/config, and "
            "this is not a pod (KUBERNETES_SERVICE_HOST is unset)",
            hint="point KUBECONFIG at a kubeconfig for the training cluster (CI: the "
            "environment's secret), or run inside the cluster",
        )
    return client


def _load_kubeconfig(config: Any, files: Sequence[Path]) -> None:
    names = ", ".join(str(f) for f in files)
    if not any(f.exists() for f in files):  # the client would skip them and say only "no config"
        raise ConfigError(
            f"KUBECONFIG names {names}: no such file",
            hint="point KUBECONFIG at the training cluster's kubeconfig file",
        )
    try:
        joined = os.pathsep.join(str(f) for f in files)
        config.load_kube_config(config_file=joined)
    except Exception as exc:
        raise ConfigError(
            f"the kubeconfig {names} does not load: {type(exc).__name__}: "
            f"{_without_entries(str(exc))[:300]}",
            hint=f"fix it (`kubectl config view --kubeconfig {files[0]}` shows how kubectl "
            "reads it), or point KUBECONFIG at the training cluster's kubeconfig",
        ) from None


def _without_entries(message: str) -> str:
    """The client names a kubeconfig entry by its dict's repr, which for a user holds the
    credential (token, password, key): such an entry shows as {...}."""
    return re.sub(r"\{.*\}", "{...}", message, flags=re.DOTALL)


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

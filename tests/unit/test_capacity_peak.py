"""The peak read from the rendered objects (adapters/capacity.py), the node pool's validation in
an environment state, and the ResourceQuota rendered from it."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.adapters import capacity
from pipelines.config import parse_environment
from pipelines.errors import CheckFailed, ConfigError
from tests.unit.core.test_render import rendered, states

MI, GI = 2**20, 2**30


@functools.cache
def _staging_files() -> tuple[str, ...]:
    # Rendered once: rendering runs kubernetes-validate over every object.
    return tuple(text for path, text in rendered().files.items() if "rendered/staging/" in path)


def staging_objects() -> list[dict[str, Any]]:
    """test_render's staging, rendered and checked as a release would render it."""
    return [yaml.safe_load(text) for text in _staging_files()]


def by_kind(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_the_peak_is_both_colors_at_their_hpa_maximum_plus_surge_jobs_and_guard() -> None:
    objects = staging_objects()
    peak = capacity.peak(objects)
    names = [p.name.split("/")[0] for p in peak.pods]
    hpa_max = by_kind(objects, "HorizontalPodAutoscaler", "digits-blue")["spec"]["maxReplicas"]
    surge = by_kind(objects, "Deployment", "digits-blue")["spec"]["strategy"]["rollingUpdate"][
        "maxSurge"
    ]
    assert names.count("digits-blue") == names.count("digits-green") == hpa_max + surge
    assert names.count("digits-smoke-000000000002") == 1
    # The guard: one replica, no HPA, the default rolling update's 25% surge rounds up to 1.
    assert names.count("mlops-guard") == 2
    assert len(peak.pods) == 2 * (hpa_max + surge) + 1 + 2
    # Requests as the rendered Deployment states them, not re-derived from model.yaml.
    container = by_kind(objects, "Deployment", "digits-green")["spec"]["template"]["spec"][
        "containers"
    ][0]
    pod = next(p for p in peak.pods if p.name.startswith("digits-green/"))
    assert pod.cpu == capacity.millicores(container["resources"]["requests"]["cpu"], "x")
    assert pod.memory == capacity.bytes_of(container["resources"]["requests"]["memory"], "x")


def test_a_template_change_is_counted_because_the_pods_come_from_the_rendering() -> None:
    objects = copy.deepcopy(staging_objects())
    deployment = by_kind(objects, "Deployment", "digits-blue")
    spec = deployment["spec"]["template"]["spec"]
    spec["initContainers"] = [
        {"name": "warm", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}
    ]
    by_kind(objects, "HorizontalPodAutoscaler", "digits-blue")["spec"]["maxReplicas"] = 2
    deployment["spec"]["strategy"] = {"type": "Recreate"}
    pods = [p for p in capacity.peak(objects).pods if p.name.startswith("digits-blue/")]
    assert len(pods) == 2  # HPA maximum, no surge with Recreate
    assert pods[0].cpu == 3000
    assert pods[0].memory == GI


def test_a_workload_kind_the_check_does_not_model_is_refused_not_ignored() -> None:
    daemon = {
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {"template": {"spec": {"containers": []}}},
    }
    with pytest.raises(ConfigError, match="does not model DaemonSet pods"):
        capacity.peak([daemon])


def test_the_staging_peak_fits_its_pool_and_the_report_says_so() -> None:
    state = states()["staging"]
    r = capacity.report(state, staging_objects())
    assert r.fits
    assert r.plan.optimal
    assert r.plan.nodes_used == 1
    assert "1 node(s) of 4 CPU, 16Gi (minimum); the pool has 3: fits" in r.lines()[0]


def test_a_peak_over_the_pool_is_refused_with_the_plan() -> None:
    state = states()["staging"]
    small = state.node_pool.model_copy(update={"cpu": "500m", "memory": "1Gi", "nodes": 2})
    with pytest.raises(CheckFailed) as exc:
        capacity.require_fits(state.model_copy(update={"node_pool": small}), staging_objects())
    message = str(exc.value)
    assert "the peak does not fit the node pool" in message
    assert "the pool has 2: DOES NOT FIT" in message
    assert "| node-2 (missing) | digits-" in message
    assert "nothing was committed" in message


def test_limits_over_the_quota_are_refused_even_when_the_requests_pack() -> None:
    state = states()["staging"]
    # Requests at peak: 1550m CPU; limits: 8200m (500m for each of 14 serving pods, 200m
    # smoke, 500m for each of 2 guard pods), over 2 nodes * 2 CPU, and over twice that.
    tight = state.node_pool.model_copy(update={"cpu": "2", "nodes": 2})
    r = capacity.report(state.model_copy(update={"node_pool": tight}), staging_objects())
    assert r.plan.fits
    assert not r.limits_fit
    assert not r.fits
    assert "OVER the quota" in r.lines()[1]
    assert "limits at peak 8200m CPU" in r.lines()[1]
    twice = tight.model_copy(update={"limits_overcommit": 2.0})
    assert not capacity.report(
        state.model_copy(update={"node_pool": twice}), staging_objects()
    ).fits
    roomy = tight.model_copy(update={"limits_overcommit": 3.0})
    assert capacity.report(state.model_copy(update={"node_pool": roomy}), staging_objects()).fits


def test_a_pod_larger_than_a_node_is_a_usage_error_naming_what_to_change() -> None:
    state = states()["staging"]
    tiny = state.node_pool.model_copy(update={"memory": "100Mi"})
    with pytest.raises(ConfigError) as exc:
        capacity.report(state.model_copy(update={"node_pool": tiny}), staging_objects())
    assert "more than one node offers" in str(exc.value)
    assert "deploy.resources" in str(exc.value)


def test_the_resource_quota_is_the_pools_capacity() -> None:
    quota = by_kind(staging_objects(), "ResourceQuota", "mlops-staging")
    assert quota["metadata"]["namespace"] == "mlops-staging"
    assert quota["spec"]["hard"] == {
        "requests.cpu": "12",
        "requests.memory": "48Gi",
        "limits.cpu": "12",
        "limits.memory": "48Gi",
    }
    pool = states()["staging"].node_pool.model_copy(
        update={"cpu": "3500m", "memory": "1536Mi", "limits_overcommit": 1.5}
    )
    assert capacity.quota_hard(pool) == {
        "requests.cpu": "10500m",
        "requests.memory": "4608Mi",
        "limits.cpu": "15750m",
        "limits.memory": "6912Mi",
    }


STATE = """\
environment: staging
namespace: mlops-staging
node_pool:
{pool}
models: {{}}
"""


def parse(tmp_path: Path, pool: str) -> None:
    path = tmp_path / "staging.yaml"
    parse_environment(path, STATE.format(pool=pool))


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ("  cpu: 4\n  memory: 16Gi\n  nodes: 0", "nodes must be between 1 and 10000, not 0"),
        ("  cpu: 4\n  memory: 16Gi\n  max_nodes: -2", "max_nodes must be between 1 and 10000"),
        ("  cpu: -1\n  memory: 16Gi\n  nodes: 3", "cpu '-1' is not a Kubernetes quantity"),
        ("  cpu: 0\n  memory: 16Gi\n  nodes: 3", "cpu must be more than zero"),
        ("  cpu: 4\n  memory: 16 GB\n  nodes: 3", "memory '16 GB' is not a Kubernetes quantity"),
        ("  cpu: 4\n  memory: 0Gi\n  nodes: 3", "memory must be more than zero"),
        ("  cpu: 4\n  memory: 16Gi", "give exactly one of nodes"),
        ("  cpu: 4\n  memory: 16Gi\n  nodes: 3\n  max_nodes: 5", "give exactly one of nodes"),
        ("  cpu: 4\n  memory: 16Gi\n  nodes: true", "nodes"),
        ("  cpu: 4\n  memory: 16Gi\n  nodes: 3\n  limits_overcommit: 0.5", "limits_overcommit"),
        ("  cpu: 4\n  nodes: 3", "memory"),
    ],
)
def test_a_bad_node_pool_is_a_usage_error_naming_the_file_and_key(
    tmp_path: Path, pool: str, message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(tmp_path, pool)
    assert message in str(exc.value)
    assert "staging.yaml" in str(exc.value)


def test_an_environment_without_a_node_pool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "staging.yaml"
    with pytest.raises(ConfigError, match="node_pool"):
        parse_environment(path, "environment: staging\nnamespace: mlops-staging\n")


def test_max_nodes_is_the_pools_size_for_the_check(tmp_path: Path) -> None:
    path = tmp_path / "staging.yaml"
    state = parse_environment(path, STATE.format(pool="  cpu: 4\n  memory: 16Gi\n  max_nodes: 20"))
    assert capacity.pool_of(state.node_pool).nodes == 20

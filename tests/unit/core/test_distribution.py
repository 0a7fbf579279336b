"""TF_CONFIG for local and Job workers, and which worker counts can run."""

from __future__ import annotations

import json

import pytest

from pipelines.core.distribution import (
    JOB_PORT,
    job_cluster,
    local_cluster,
    parse_tf_config,
    workers_problem,
)


def test_local_workers_each_get_their_index_over_loopback() -> None:
    configs = [json.loads(local_cluster([41000, 41001], i).to_json()) for i in (0, 1)]
    for i, config in enumerate(configs):
        assert config == {
            "cluster": {"worker": ["127.0.0.1:41000", "127.0.0.1:41001"]},
            "task": {"type": "worker", "index": i},
        }
    assert local_cluster([41000, 41001], 0).is_chief
    assert not local_cluster([41000, 41001], 1).is_chief


def test_job_workers_resolve_each_other_through_the_headless_service() -> None:
    cluster = job_cluster("digits-train", "digits-train", 3, 2, JOB_PORT)
    assert cluster.tf_config() == {
        "cluster": {
            "worker": [
                "digits-train-0.digits-train:2222",
                "digits-train-1.digits-train:2222",
                "digits-train-2.digits-train:2222",
            ]
        },
        "task": {"type": "worker", "index": 2},
    }
    assert cluster.size == 3
    assert not cluster.is_chief


def test_tf_config_round_trips() -> None:
    cluster = job_cluster("j", "s", 2, 1, 2222)
    assert parse_tf_config(cluster.to_json()) == cluster


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "an object with cluster and task only"),
        ('{"cluster": {"worker": ["a:1", "b:1"], "ps": ["c:1"]}, "task": {}}', "workers only"),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', "a list"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "chief"}}', "task must be"),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": true}}',
            "an integer",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
            "outside 0..1",
        ),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', "at least 2"),
        (
            '{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
            "more than once",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b;rm:1"]}, "task": {"type": "worker", "index": 0}}',
            "not host:port",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:70000"]}, "task": {"type": "worker", "index": 0}}',
            "not host:port",
        ),
    ],
)
def test_bad_tf_config_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tf_config(text)


def test_job_names_must_be_dns_labels() -> None:
    with pytest.raises(ValueError, match="not a DNS label"):
        job_cluster("Digits_Train", "svc", 2, 0, 2222)


@pytest.mark.parametrize(
    ("workers", "cpus", "batch", "problem"),
    [
        (1, 2, 32, None),
        (2, 2, 32, None),
        (4, None, 32, None),  # a Job's pods: the local CPU count does not apply
        (0, 2, 32, "at least 1"),
        (3, 2, 33, "need 3 CPUs"),
        (2, 2, 33, "does not split evenly"),
    ],
)
def test_which_worker_counts_can_run(
    workers: int, cpus: int | None, batch: int, problem: str | None
) -> None:
    found = workers_problem(workers, cpus, batch)
    assert (found is None) if problem is None else (found is not None and problem in found)

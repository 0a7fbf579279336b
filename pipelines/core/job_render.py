"""The cluster path's objects for one model: an Indexed Job that trains it across its
training.distribution.workers pods (with the headless Service the workers find each other
through), and an Indexed Job of Optuna workers that tune it.

Rendered into manifests/jobs/<model>/ only once gitops.yaml's jobs.image is set (the training
image, pinned by digest): no image this project builds holds TensorFlow for a pod, so there is
nothing sensible to default to. They are applied by hand (the train-cluster workflow or GitLab
job), never synced by Argo CD or Flux: a Job that reruns on every sync would retrain. Pure,
like the rest of rendering.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.config.schema import GitOpsConfig, ModelConfig
from pipelines.core.render import RenderedObject, _one, environment
from pipelines.serving import contract

JOBS_DIR = "jobs"


def train_job_name(model: str) -> str:
    """The training Job's name, which is also its headless Service's."""
    return f"{model}-train"


def job_objects(
    model: ModelConfig, gitops: GitOpsConfig, templates: Mapping[str, str]
) -> list[RenderedObject]:
    """The training Job (and its Service when it has more than one worker) and, when model.yaml
    has a tuning section, the tuning Job of ``model``; none while jobs.image is unset."""
    if not gitops.jobs.image:
        return []
    jenv = environment(templates)
    workers = model.training.distribution.workers
    ctx = {
        "model": {"name": model.name},
        "job": {"name": train_job_name(model.name), "workers": workers},
        "jobs": gitops.jobs.model_dump(),
        "uid": contract.UID,
    }
    objects = [_one(jenv, "jobs/train-job.yaml.j2", ctx)]
    if model.tuning is not None:  # without a search space, a tuning Job could only fail
        objects.append(_one(jenv, "jobs/tune-job.yaml.j2", ctx))
    if workers > 1:
        objects.append(_one(jenv, "jobs/train-service.yaml.j2", ctx))
    return sorted(objects, key=lambda o: o.filename)

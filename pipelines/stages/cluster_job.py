"""cluster-job: apply a model's training or tuning Job, as committed in manifests/jobs/<model>/,
to the training cluster. What is applied is exactly what was reviewed: the committed files,
after checking that rendering the current configuration gives the same objects and that they
pass the schemas and the policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pipelines.adapters import kubejobs, manifests
from pipelines.adapters import rendering as render
from pipelines.config import Workspace, load_gitops
from pipelines.core import job_render
from pipelines.errors import CheckFailed, ConfigError

Kind = Literal["train", "tune"]
KINDS: tuple[Kind, ...] = ("train", "tune")


@dataclass(frozen=True)
class ClusterJobResult:
    """The Job that was started, and the objects applied with it."""

    namespace: str
    job: str
    applied: list[str]


def run(ws: Workspace, kind: Kind, progress: Callable[[str], None] = print) -> ClusterJobResult:
    """Apply ``kind``'s Job of the model (and, for a multi-worker training, its Service)."""
    gitops = load_gitops(ws.root)
    if not gitops.jobs.image:
        raise ConfigError(
            "no training Jobs are rendered: manifests/gitops.yaml sets no jobs.image",
            hint="set jobs.image to the training image, pinned by digest, run `mlops render` "
            "and commit manifests/jobs/",
        )
    folder = ws.root / "manifests" / job_render.JOBS_DIR / ws.name
    rendering = render.render_with(ws.root, ws.root / "manifests", gitops)
    prefix = f"{job_render.JOBS_DIR}/{ws.name}/"
    expected = {k[len(prefix) :]: v for k, v in rendering.files.items() if k.startswith(prefix)}
    committed = manifests.read_tree(folder)
    if committed != expected:
        raise CheckFailed(
            f"{folder.relative_to(ws.root)} is not what the configuration renders",
            hint="run `mlops render` and commit the result: only reviewed Jobs are applied",
        )
    violations = [v for v in rendering.violations if v.file.startswith(prefix)]
    if violations:
        raise CheckFailed(
            f"{len(violations)} violation(s) in the Jobs:\n"
            + "\n".join(f"  - {v}" for v in violations),
            hint="fix gitops.yaml's jobs section or the templates, then `mlops render`",
        )
    job = job_render.train_job_name(ws.name) if kind == "train" else f"{ws.name}-tune"
    objects = [manifests.parse(text) for _, text in sorted(committed.items())]
    chosen = [o for o in objects if o["metadata"]["name"] == job]
    if not chosen:  # only a tuning Job can be missing: it is rendered for a tuning section
        raise ConfigError(
            f"{ws.name} has no {kind} Job: its model.yaml has no tuning section",
            hint="add tuning.space to model.yaml, run `mlops render` and commit manifests/jobs/",
        )
    client = kubejobs.connect()
    kubejobs.apply(client, chosen, progress)
    applied = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in chosen)
    return ClusterJobResult(gitops.jobs.namespace, job, applied)

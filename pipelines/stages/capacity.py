"""capacity: can the environment's node pool hold its peak?

Reads the environment's state from the GitOps repository (what runs, or is about to), renders
it with this checkout's templates and models, and packs every pod the rendering can run at once
(each model's Deployments, both colors, at their HPA maximum plus a rolling update's surge;
the Jobs; the guard) onto the declared node pool with the fewest nodes (core/capacity.py).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.adapters import capacity, gitops
from pipelines.adapters import rendering as render
from pipelines.config import load_gitops


def run(root: Path, env: str) -> capacity.Report:
    """The packing of ``env``'s peak onto its node pool (fits or not: the caller decides)."""
    cfg = load_gitops(root)
    with gitops.checkout(cfg, root) as repo:
        state = repo.read_state(env)
    return capacity.report(state, [o.obj for o in render.objects_of(root, state, cfg)])

"""rollback: flip an environment's active color back to the previous release.

The previous release still runs in the idle color (blue-green keeps it warm), so the rollback
is only a change of the Service selector: one commit, carrying ``Rollback-Of: <release-id>``,
or a pull request where the environment's rollback mode is ``pr``. The mechanics live in
adapters/rollbacks.py, which the guard (stages/guard.py) shares.

Rolling back twice in a row would flip back to the release the first rollback took out of
service; that is refused unless ``reactivate`` asks for it (the history's trailers decide,
see bluegreen.rolled_back_from).
"""

from __future__ import annotations

from pipelines.adapters.rollbacks import Progress, RollbackResult, plan, roll_back
from pipelines.config import Workspace

__all__ = ["RollbackResult", "plan", "run"]


def run(
    ws: Workspace, env: str, progress: Progress = print, *, reactivate: bool = False
) -> RollbackResult:
    """Roll ``env`` back to the release in its idle color (``mlops rollback``)."""
    return roll_back(ws, env, progress, reactivate=reactivate)

"""Which models a change affects, and which folder names may be models at all.

CI runs every model (one matrix entry per folder of ``models/``), but a pull/merge request's
report comment covers only the models its change touches: a change under ``models/<m>/``
affects ``m``; a change anywhere else (``pipelines/``, ``data.dvc``, a data source, the
constraints, the CI files) can change what every model trains on or how it is judged, so it
affects all of them. Pure: the caller lists the files (git, or the SCM's API) and the models.

Standard library only: ``scripts/ci-models.py`` imports this module with the runner's own
``python3``, before any dependency is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

MODELS_DIR = "models"
# A model's name becomes a Kubernetes object name, an image repository and a DVC stage name:
# a DNS label (config/schema.py's DNS_LABEL; a test keeps the two equal).
MODEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63


def invalid_model_names(names: Iterable[str]) -> list[str]:
    """The names that cannot be models (not a DNS label of at most 63 characters), sorted."""
    return sorted(n for n in names if len(n) > MAX_NAME or not MODEL_NAME.fullmatch(n))


def affected_models(changed: Iterable[str], models: Sequence[str]) -> list[str]:
    """The models (sorted) that a change to the repository-relative paths ``changed`` affects.

    A path under ``models/<m>/`` affects ``m`` only, and nothing when ``m`` is not a model any
    more (its folder was deleted: nothing is left to report on). Any other path affects every
    model. A rename is two paths, the old and the new; both count.
    """
    known = set(models)
    hit: set[str] = set()
    for path in changed:
        parts = PurePosixPath(path.strip("/")).parts
        if len(parts) >= 2 and parts[0] == MODELS_DIR:
            if parts[1] in known:
                hit.add(parts[1])
            continue
        if parts:
            return sorted(known)
    return sorted(hit)

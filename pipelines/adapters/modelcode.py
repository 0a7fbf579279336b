"""Load the Python files that live in a model's folder (architecture, expectation suite)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from pipelines.config import Workspace
from pipelines.errors import ConfigError


def load(ws: Workspace, filename: str) -> ModuleType:
    """Import a Python file from the model's folder; a usage error if missing or not Python."""
    path = ws.model_dir / filename
    if not path.is_file():
        raise ConfigError(f"{path} does not exist", hint=f"models/{ws.name}/ must define it")
    spec = importlib.util.spec_from_file_location(f"mlops_model_{ws.name}_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Which of this project's source files a module depends on: its own file, every module of
``pipelines`` it imports (at the top or inside functions, directly or through others), and
the packages' ``__init__.py`` files Python runs on the way. grimp builds the import graph from
the source, without importing anything. DVC stages list these files as deps, so an edit of any
code a stage runs invalidates its cache; a hand-kept list went stale (dvcgraph.py's history).
"""

from __future__ import annotations

from pathlib import Path

import grimp

PACKAGE = "pipelines"


def module_files(root: Path, modules: list[str]) -> dict[str, list[str]]:
    """Per module: repository-relative paths of its code and of everything in ``pipelines`` it
    imports, sorted. One graph for all of them (building it is most of the time)."""
    graph = grimp.build_graph(PACKAGE, cache_dir=None)  # no cache folder left in the tree
    return {
        module: _files(root, {module, *graph.find_upstream_modules(module)}) for module in modules
    }


def _files(root: Path, modules: set[str]) -> list[str]:
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    modules |= {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}
    return sorted(_path(root, m) for m in modules)


def _path(root: Path, module: str) -> str:
    base = module.replace(".", "/")
    return f"{base}/__init__.py" if (root / base / "__init__.py").is_file() else f"{base}.py"

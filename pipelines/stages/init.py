"""init: scaffold models/<name>/ from a table: its schema, expectation suite and baseline network.

The table is profiled (core/scaffold.py decides what each column is); the model's files are
rendered from pipelines/scaffold/, parsed back and validated like any model.yaml, and only then
moved into place, all at once. A folder that already exists is left alone unless it is exactly
what init would write (a re-run) or --force says to replace it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from pipelines.adapters import dvc
from pipelines.adapters.artifacts import staged_dir, write_bytes, write_text
from pipelines.adapters.datasets import read_table
from pipelines.config import MODELS_DIR, ModelConfig, model_names
from pipelines.config.loading import format_validation_error
from pipelines.config.schema import DNS_LABEL, ServingConfig, relative_path_problem
from pipelines.core import render, scaffold
from pipelines.errors import ConfigError, DataInvalid

TEMPLATES = Path(__file__).resolve().parent.parent / "scaffold"

# The CI files that list the models, each with its rewrite and the line it rewrites: GitLab and
# Jenkins read their model matrix from the file when the pipeline starts, not from models/
# (GitHub's is built from models/*/ by its `models` job, and Cloud Build runs one model per
# trigger).
CI_MATRICES: tuple[tuple[str, Callable[[str, list[str]], str | None], str], ...] = (
    (".gitlab-ci.yml", scaffold.gitlab_matrix, "`- MODEL: [...]` line"),
    ("Jenkinsfile", scaffold.jenkins_matrix, "MODEL axis `values '...'` line"),
)
NAME = re.compile(DNS_LABEL)
NAME_MAX = 40  # model.yaml's `name` limit: it prefixes Kubernetes names of up to 63


@dataclass(frozen=True)
class InitResult:
    """The model folder, what init inferred, and whether anything was written."""

    folder: Path
    inferred: scaffold.Inferred
    written: bool
    tracked: dvc.Tracked | None = None
    ci: tuple[str, ...] = ()  # what became of each CI file's model matrix, in words


def _source(root: Path, data: str) -> Path:
    problem = relative_path_problem(data)
    if problem:
        raise ConfigError(
            f"--data {problem}", hint="give the table's path relative to the repository root"
        )
    path = root / data
    if not path.is_file():
        raise ConfigError(
            f"--data {data}: no such file in the repository",
            hint="put the table in the repository (DVC-tracked if large) and pass its path",
        )
    return path


def _files(
    inferred: scaffold.Inferred, name: str, data: str, base_image: str, in_dvc: bool
) -> dict[str, str]:
    templates = {p.name: p.read_text(encoding="utf-8") for p in TEMPLATES.glob("*.j2")}
    env = render.environment(templates)
    context = scaffold.template_context(inferred, name, data, base_image) | {"dvc": in_dvc}
    return {
        "model.yaml": env.get_template("model.yaml.j2").render(context),
        "architecture.py": env.get_template("architecture.py.j2").render(context),
        "expectations.py": (TEMPLATES / "expectations.py").read_text(encoding="utf-8"),
    }


def _check(path: Path, text: str) -> None:
    """Parse the rendered model.yaml back and validate it: a bug here must not leave a folder."""
    try:
        ModelConfig.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(path, exc),
            hint="the scaffold does not support this table yet; write model.yaml by hand",
        ) from None


def _profile(
    root: Path, data: str, label: str, task: str, exclude: tuple[str, ...]
) -> scaffold.Inferred:
    """What the table makes, or the refusal: a usage error (exit 2) for an argument or what
    this version cannot build, invalid data (exit 1) for the table itself."""
    table = read_table(_source(root, data), f"--data {data}")
    if label not in table.columns:
        columns = ", ".join(map(str, table.columns[:20]))
        raise ConfigError(
            f"--label {label!r} is not a column of {data}", hint=f"its columns: {columns}"
        )
    inferred = scaffold.infer(table, label, task, exclude=exclude)
    if isinstance(inferred, scaffold.Refusal):
        listing = "\n".join(f"  - {p}" for p in inferred.problems)
        raise DataInvalid(
            f"{data} cannot make a model as it is:\n{listing}",
            hint="fix the table (or --exclude the columns named), then run init again",
        )
    if inferred.task == "classification" and not all(isinstance(c, int) for c in inferred.classes):
        # model.yaml's classes are integers (the server answers a class index's label).
        raise ConfigError(
            f"{data}: the label {label!r} holds text or true/false "
            f"({', '.join(map(repr, inferred.classes[:5]))}), and classes are integers here",
            hint="encode the label as integers 0..K-1 in the table (keep the mapping), then run "
            "init again",
        )
    return inferred


def run(
    root: Path,
    name: str,
    data: str,
    label: str,
    task: str = "auto",
    exclude: tuple[str, ...] = (),
    force: bool = False,
    dvc_remote: str | None = None,
) -> InitResult:
    """Profile ``data`` and write models/<name>/ (model.yaml, architecture.py, expectations.py).
    With ``dvc_remote`` ("" for the default remote), the table is recorded with DVC and pushed
    there first, and model.yaml says so: the table then lives in the remote, not in git."""
    if not NAME.match(name) or len(name) > NAME_MAX:
        raise ConfigError(
            f"model name {name!r} is not a DNS label (a-z, 0-9 and -, at most 40)",
            hint="it names Kubernetes objects and image repositories",
        )
    inferred = _profile(root, data, label, task, exclude)
    # The schema's default base image, written out: a scaffolded model.yaml states it.
    base_image = str(ServingConfig.model_fields["base_image"].default)
    folder = root / MODELS_DIR / name
    in_dvc = dvc_remote is not None
    if in_dvc:  # a missing remote is refused (exit 2) before anything is written
        dvc_remote = dvc.default_remote(root, dvc_remote or None)
    files = _files(inferred, name, data, base_image, in_dvc)
    _check(folder / "model.yaml", files["model.yaml"])
    if folder.exists():
        same = all(
            (folder / f).is_file() and (folder / f).read_text(encoding="utf-8") == text
            for f, text in files.items()
        )
        if same:  # a re-run: at most the push again, which is idempotent
            tracked = dvc.track_source(root, data, dvc_remote) if in_dvc else None
            return InitResult(folder, inferred, False, tracked, _ci_matrices(root))
        if not force:
            raise ConfigError(
                f"{folder.relative_to(root)} exists and is not what init would write "
                "(edited by hand?)",
                hint="pass --force to replace the whole folder, or choose another name",
            )
    # Pushed before the folder appears: a push that fails (exit 3) leaves no model that
    # names a table the remote does not hold.
    tracked = dvc.track_source(root, data, dvc_remote) if in_dvc else None
    with staged_dir(folder) as out:
        for filename, text in files.items():
            write_bytes(out / filename, text.encode("utf-8"))
    return InitResult(folder, inferred, True, tracked, _ci_matrices(root))


def _ci_matrices(root: Path) -> tuple[str, ...]:
    """Add the model to each CI file's model matrix (CI_MATRICES), saying what became of it."""
    return tuple(_ci_matrix(root, *entry) for entry in CI_MATRICES)


def _ci_matrix(
    root: Path, name: str, rewrite: Callable[[str, list[str]], str | None], line: str
) -> str:
    path = root / name
    if not path.is_file():
        return f"no {name}"
    text = path.read_text(encoding="utf-8")
    updated = rewrite(text, model_names(root))
    if updated is None:
        return f"{name} has no single {line}: add the model to it by hand"
    if updated == text:
        return f"{name} already lists it"
    write_text(path, updated)
    return f"added to {name}'s model matrix"

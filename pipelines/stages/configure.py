"""`mlops configure`: make a fork of the template its own in one command.

It sets ``repo_url`` and ``registry`` in manifests/gitops.yaml (comments kept), the owners of
production's paths in CODEOWNERS (the provider's file, and every other one that exists), and
re-renders manifests/ so that the controller objects fetch the fork's GitOps repository. Every
value is checked and everything is rendered and validated in memory first: a bad value writes
nothing. Then the rendered folders are replaced (all together), then each file atomically, only
when its bytes change, so a second run with the same values changes nothing, and a run with
other values replaces the earlier ones. A write that fails puts back what the others replaced:
the placeholders and the rendered files never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.adapters import rendering as render
from pipelines.adapters.artifacts import write_text
from pipelines.config import GitOpsConfig, inside, load_yaml
from pipelines.core import configure as plan
from pipelines.errors import ConfigError, InfraError

GITOPS_FILE = "manifests/gitops.yaml"


@dataclass(frozen=True)
class ConfigureResult:
    """What was set and which files changed (repository-relative; empty: already so)."""

    values: plan.Values
    changed: list[str]
    rendered: int  # rendered files (rendered/ and controllers/) that changed


def _read(root: Path, rel: str) -> str | None:
    """The file's text, None where it does not exist yet; refused (before anything is
    written) where no file can be written: a folder there, or a file in place of a folder."""
    path = inside(root, root / rel, rel)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    top = root.resolve()
    below = [p for p in path.parents if p.is_relative_to(top) and p != top]
    in_the_way = path if path.exists() else next((p for p in below if p.is_file()), None)
    if in_the_way is not None:
        what = "not a regular file" if in_the_way == path else "a file, not a folder"
        raise ConfigError(
            f"{rel} cannot be written: {in_the_way.relative_to(top)} is {what}",
            hint=f"move {in_the_way.relative_to(top)} aside and re-run; nothing was written",
        )
    return None


def run(
    root: Path,
    repo_url: str,
    registry: str,
    owners: Sequence[str],
    provider: str | None = None,
) -> ConfigureResult:
    """Check the values, plan every file in memory, render, then write what differs."""
    try:
        values = plan.check_values(repo_url, registry, owners, provider)
    except plan.ConfigureError as exc:
        raise ConfigError(
            "nothing was written: " + "\n  - ".join(["", *exc.problems]),
            hint="fix the values above and re-run `mlops configure`",
        ) from None
    current = _read(root, GITOPS_FILE)
    if current is None:
        raise ConfigError(
            f"{GITOPS_FILE} does not exist",
            hint="run mlops configure in a clone of the template (restore the file from it)",
        )
    try:
        gitops_text = plan.gitops_yaml(current, values)
    except plan.ConfigureError as exc:
        raise ConfigError(
            "nothing was written: " + "\n  - ".join(["", *exc.problems]),
            hint=f"fix {GITOPS_FILE} and re-run `mlops configure`",
        ) from None
    # The file's values alone, as a checkout without CI variables renders them.
    cfg = GitOpsConfig.model_validate(load_yaml(gitops_text))
    patterns = plan.codeowners_patterns(cfg.promote_environment)
    after = {GITOPS_FILE: gitops_text}
    before: dict[str, str | None] = {GITOPS_FILE: current}
    for name, rel in plan.CODEOWNERS_FILES.items():
        text = _read(root, rel)
        if text is not None or name == values.provider:
            before[rel] = text
            after[rel] = plan.codeowners(text, patterns, values.owners)
    manifests = inside(root, root / "manifests", "manifests/")
    rendering = render.render_with(root, manifests, cfg)
    render.require_clean(rendering)
    on_disk = render.on_disk(manifests)
    stale = plan.changes(on_disk, rendering.files) + sorted(set(on_disk) - set(rendering.files))
    changed = plan.changes(before, after)
    try:
        # The rendered folders first: their own checks (a folder that leads outside) come
        # before anything is written, and they are replaced all together or not at all.
        if stale:
            render.write(manifests, rendering.files)
        for rel in changed:
            write_text(root / rel, after[rel])
    except BaseException as exc:  # Ctrl-C too: the placeholders and rendered files go together
        _put_back(root, {rel: before[rel] for rel in changed}, manifests, on_disk)
        if isinstance(exc, OSError):  # the disk, not the values: exit 3, saying so
            raise InfraError(
                f"cannot write {exc.filename or 'a file'}: {exc.strerror or exc}",
                hint="free space or fix the permissions and re-run; what was already "
                "replaced was put back",
            ) from exc
        raise
    return ConfigureResult(values, changed + [f"manifests/{p}" for p in stale], len(stale))


def _put_back(
    root: Path, files: Mapping[str, str | None], manifests: Path, rendered: Mapping[str, str]
) -> None:
    """Restore what a failed write replaced: each file as it was (gone if it was absent), and
    the rendered folders if they no longer hold what they held."""
    for rel, text in files.items():
        path = root / rel
        now = path.read_text(encoding="utf-8") if path.is_file() else None
        if now != text:
            if text is None:
                path.unlink()
            else:
                write_text(path, text)
    if render.on_disk(manifests) != rendered:
        render.write(manifests, rendered)

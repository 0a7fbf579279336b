"""What `mlops configure` rewrites to make a fork of the template its own, and where the
template's placeholders still are. Pure: texts in, texts out; the stage reads and writes.

A fork decides four things the template cannot: the GitOps repository its cluster fetches
(``repo_url``), the registry its images go to, who owns production's paths (CODEOWNERS), and
which SCM hosts it (where CODEOWNERS is read). Each value is checked against an allow-list
before anything is planned, and every check runs before any is reported, so one run names
every bad value.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast
from urllib.parse import urlsplit

from pydantic import ValidationError

from pipelines.config.schema import REGISTRY_REF, REPO_URL, GitOpsConfig

if TYPE_CHECKING:
    from ruamel.yaml import YAML

Provider = Literal["github", "gitlab"]
PROVIDERS: tuple[Provider, ...] = ("github", "gitlab")

# The template's placeholder values, and the words that mark any of them (the scan below).
TEMPLATE_REPO_URL = "https://github.com/your-org/your-gitops-repo.git"
TEMPLATE_OWNER = "@your-org/ml-platform"
PLACEHOLDER_WORDS = re.compile(r"your-org|your-gitops-repo")

# Where each provider reads CODEOWNERS first: GitHub .github/, GitLab root, docs/, .gitlab/
# (a file in .github/ means nothing to GitLab). Every existing one is kept current.
CODEOWNERS_FILES: dict[Provider, str] = {
    "github": ".github/CODEOWNERS",
    "gitlab": ".gitlab/CODEOWNERS",
}

# An owner as both providers write one: @user, @org/team (GitHub), @group/subgroup/... (GitLab).
# A GitHub user name or organisation: letters, digits and single hyphens; a team slug, GitLab
# paths: also "_" and ".", not at the ends. No e-mail owners: the brief is people and teams.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,98}[A-Za-z0-9])?"
OWNER = {
    "github": re.compile(rf"@{_NAME}(?:/{_NAME})?"),
    "gitlab": re.compile(rf"@{_NAME}(?:/{_NAME}){{0,20}}"),
}
# Hosts whose provider is certain; any other needs --provider.
KNOWN_HOSTS: dict[str, Provider] = {"github.com": "github", "gitlab.com": "gitlab"}


class ConfigureError(ValueError):
    """One or more values are not acceptable; ``problems`` says which and why."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Values:
    """A fork's own settings, checked."""

    repo_url: str
    registry: str
    owners: tuple[str, ...]
    provider: Provider


@dataclass(frozen=True)
class Placeholder:
    """A template placeholder found in a file."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def provider_of(repo_url: str, provider: str | None) -> str | None:
    """The provider given, else the one the URL's host makes certain (None: cannot tell)."""
    if provider:
        return provider
    return KNOWN_HOSTS.get((urlsplit(repo_url).hostname or "").lower())


def check_values(
    repo_url: str, registry: str, owners: Sequence[str], provider: str | None
) -> Values:
    """The values, checked; ConfigureError listing every problem otherwise."""
    problems: list[str] = []
    if not re.fullmatch(REPO_URL, repo_url) or PLACEHOLDER_WORDS.search(repo_url):
        problems.append(
            f"--repo-url {repo_url!r}: not a URL both Argo CD and Flux fetch: "
            "https://host/owner/repo.git or ssh://git@host/owner/repo.git (the scp-like "
            "git@host:owner/repo.git is refused by Flux), no password or token in it, and not "
            "the template's placeholder"
        )
    if not re.fullmatch(REGISTRY_REF, registry) or PLACEHOLDER_WORDS.search(registry):
        problems.append(
            f"--registry {registry!r}: not a registry reference host[:port][/namespace] in "
            "lower case, e.g. ghcr.io/acme or registry.gitlab.com/acme/ml (the host needs a "
            "dot, a port or to be localhost)"
        )
    chosen = provider_of(repo_url, provider)
    if chosen not in PROVIDERS:
        problems.append(
            f"--provider {provider!r}: say github or gitlab"
            if provider
            else f"cannot tell the provider from {repo_url!r}: pass --provider github|gitlab"
        )
    pattern = OWNER.get(chosen or "", OWNER["gitlab"])
    bad = [o for o in owners if not pattern.fullmatch(o) or PLACEHOLDER_WORDS.search(o)]
    if not owners or bad:
        problems.append(
            f"--owners {' '.join(bad) or '(none)'}: each owner is @user or @org/team"
            + (" (GitLab: @group/subgroup too)" if chosen != "gitlab" else " or @group/subgroup")
        )
    if problems:
        raise ConfigureError(problems)
    return Values(repo_url, registry, tuple(dict.fromkeys(owners)), cast(Provider, chosen))


def _yaml() -> YAML:
    # Imported here: the release path imports this module for ``placeholders``, and CI's report
    # job, which reaches it through adapters/scm, installs only the report extra (no ruamel).
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, order and quoting stay as the user wrote them
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def gitops_yaml(text: str, values: Values) -> str:
    """manifests/gitops.yaml with ``repo_url`` and ``registry`` set, everything else kept
    byte for byte (comments included). ConfigureError if the result does not validate."""
    yaml = _yaml()
    doc = yaml.load(text) or {}
    if not isinstance(doc, dict):
        raise ConfigureError(["manifests/gitops.yaml: expected a mapping at the top level"])
    doc["repo_url"] = values.repo_url
    doc["registry"] = values.registry
    out = io.StringIO()
    yaml.dump(doc, out)
    result = out.getvalue()
    try:  # parse back what we would write: a fork's edited file may hold other errors
        GitOpsConfig.model_validate(_yaml().load(result))
    except ValidationError as exc:
        raise ConfigureError(
            [f"manifests/gitops.yaml: {e['loc']}: {e['msg']}" for e in exc.errors()]
        ) from None
    return result


def codeowners_patterns(promote_environment: str) -> tuple[str, ...]:
    """The paths whose change puts a release in production: its state and its rendering."""
    return (
        f"/manifests/environments/{promote_environment}.yaml",
        f"/manifests/rendered/{promote_environment}/",
    )


CODEOWNERS_HEADER = (
    "# Production changes only through a reviewed promotion PR: these paths need the "
    "platform team.\n"
)


def codeowners(text: str | None, patterns: Sequence[str], owners: Sequence[str]) -> str:
    """A CODEOWNERS file whose rule for each of ``patterns`` names exactly ``owners``. Other
    lines, a fork's own rules and comments, stay as they are; a missing rule is appended."""
    lines = (text if text is not None else CODEOWNERS_HEADER).splitlines()
    owned = " ".join(owners)
    seen = set()
    for i, line in enumerate(lines):
        fields = line.split()
        if fields and fields[0] in patterns:
            lines[i] = f"{fields[0]} {owned}"
            seen.add(fields[0])
    lines += [f"{p} {owned}" for p in patterns if p not in seen]
    return "\n".join(lines) + "\n"


def placeholders(files: Mapping[str, str]) -> list[Placeholder]:
    """Every line of ``files`` (path -> text) holding a template placeholder, in path order."""
    found = []
    for path in sorted(files):
        for number, line in enumerate(files[path].splitlines(), start=1):
            if PLACEHOLDER_WORDS.search(line):
                found.append(Placeholder(path, number, line.strip()[:160]))
    return found


def unconfigured(cfg: GitOpsConfig) -> list[str]:
    """The settings of ``cfg`` that still hold a template placeholder (what every release
    would render into the controller objects), as "key: value"."""
    return [f"repo_url: {cfg.repo_url}"] if PLACEHOLDER_WORDS.search(cfg.repo_url) else []


def changes(before: Mapping[str, str | None], after: Mapping[str, str]) -> list[str]:
    """The paths whose text differs (a file that did not exist counts as changed), sorted."""
    return sorted(p for p, text in after.items() if before.get(p) != text)

"""The GitOps repository: a throw-away clone per operation, commits with trailers, and pushes
that either land whole or not at all.

Every operation works in its own temporary clone, so concurrent releases from separate
processes never share a working tree; git's atomic ref update on the remote decides who lands
first, and the others re-apply on top. The embedded default remote is a local bare repository
(.infra/gitops.git), created and seeded from this repository's manifests/ on first use.

A token for an HTTPS remote (MLOPS_GITOPS_TOKEN) is handed to git in an environment-borne
http.extraHeader, never in a URL or an argument, and is scrubbed from every error message.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import (
    EnvironmentState,
    GitOpsConfig,
    dump_environment,
    parse_environment,
)
from pipelines.errors import ConfigError, InfraError

TOKEN_VARS = ("MLOPS_GITOPS_TOKEN",)
DEFAULT_NAME = "mlops-bot"
DEFAULT_EMAIL = "mlops-bot@users.noreply.invalid"
SEED_FOLDERS = ("environments", "rendered", "controllers")
RETRYABLE = re.compile(r"(non-fast-forward|fetch first|rejected|cannot lock ref|"
                       r"failed to update ref|stale info|incorrect old value)", re.IGNORECASE)


class PushRejected(Exception):
    """The remote moved on since our clone: fetch, re-apply and try again."""


def redact(text: str) -> str:
    for var in (*TOKEN_VARS, "GITHUB_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN"):
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    # Credentials embedded in URLs (https://user:secret@host/...)
    return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)


def is_url(remote: str) -> bool:
    return "://" in remote or re.match(r"^[\w.-]+@[\w.-]+:", remote) is not None


def resolve_remote(cfg: GitOpsConfig, root: Path) -> str:
    if is_url(cfg.remote):
        return cfg.remote
    return str((root / cfg.remote).resolve())


def _git_env(provider: str) -> dict[str, str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    token = os.environ.get("MLOPS_GITOPS_TOKEN")
    if token:
        user = "oauth2" if provider == "gitlab" else "x-access-token"
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
        env.update({"GIT_CONFIG_COUNT": str(count + 1),
                    f"GIT_CONFIG_KEY_{count}": "http.extraHeader",
                    f"GIT_CONFIG_VALUE_{count}": f"Authorization: Basic {basic}"})
    return env


@dataclass
class Checkout:
    """A working clone of the GitOps branch (or of another branch, for promotions)."""

    work: Path
    cfg: GitOpsConfig
    remote: str

    @property
    def manifests(self) -> Path:
        return self.work / self.cfg.path

    def git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", *args], cwd=self.work, capture_output=True, text=True,
                              env=_git_env(self.cfg.provider), check=False)
        if check and proc.returncode != 0:
            raise InfraError(f"git {args[0]} failed in the GitOps checkout: "
                             f"{redact(proc.stderr.strip() or proc.stdout.strip())[-800:]}")
        return proc.stdout

    def state_path(self, env: str) -> Path:
        return self.manifests / "environments" / f"{env}.yaml"

    def read_state(self, env: str) -> EnvironmentState:
        path = self.state_path(env)
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.yaml"))
            raise ConfigError(f"environment {env!r} does not exist in the GitOps repository",
                              hint=f"known environments: {', '.join(known) or 'none'}")
        return parse_environment(path, path.read_text(encoding="utf-8"))

    def write_state(self, state: EnvironmentState) -> None:
        path = self.state_path(state.environment)
        path.write_text(dump_environment(state), encoding="utf-8")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def commit(self, message: str) -> str | None:
        """Stage everything under the manifests folder and commit; None if nothing changed."""
        self.git("add", "--all", "--", self.cfg.path)
        if not self.git("status", "--porcelain", "--", self.cfg.path).strip():
            return None
        self.git("commit", "--quiet", "--file", self._message_file(message))
        return self.head()

    def _message_file(self, message: str) -> str:
        path = self.work.parent / "COMMIT_MSG"
        path.write_text(message, encoding="utf-8")
        return str(path)

    def push(self, branch: str, *, force: bool = False) -> None:
        args = ["push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}"]
        if force:
            args.insert(1, "--force")
        proc = subprocess.run(["git", *args], cwd=self.work, capture_output=True, text=True,
                              env=_git_env(self.cfg.provider), check=False)
        if proc.returncode == 0:
            return
        output = redact(f"{proc.stdout}\n{proc.stderr}")
        if RETRYABLE.search(output):
            raise PushRejected(output.strip()[-300:])
        raise InfraError(f"pushing to the GitOps repository failed: {output.strip()[-600:]}",
                         hint="check MLOPS_GITOPS_REMOTE and the token's write access")

    def sync(self, branch: str) -> None:
        """Throw local work away and stand on the remote's tip of ``branch``."""
        self.git("fetch", "--quiet", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        self.git("checkout", "--quiet", "-B", branch, f"origin/{branch}")
        self.git("reset", "--quiet", "--hard", f"origin/{branch}")
        self.git("clean", "--quiet", "-fdx")


def _identity(work: Path) -> None:
    """Commits need an author: the user's git identity, else the bot's."""
    for key, fallback in (("user.name", DEFAULT_NAME), ("user.email", DEFAULT_EMAIL)):
        probe = subprocess.run(["git", "config", key], cwd=work, capture_output=True, text=True,
                               check=False)
        if not probe.stdout.strip():
            subprocess.run(["git", "config", key, os.environ.get(
                "MLOPS_GIT_" + key.split(".")[1].upper(), fallback)], cwd=work, check=True)


def ensure_local_remote(cfg: GitOpsConfig, root: Path, remote: str) -> bool:
    """Create and seed the embedded local GitOps repository if it is missing; True if made."""
    if is_url(cfg.remote) or (Path(remote) / "HEAD").is_file():
        return False
    Path(remote).parent.mkdir(parents=True, exist_ok=True)
    # Racing first releases must not seed twice: one creates, the others wait and use it.
    with Path(f"{remote}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (Path(remote) / "HEAD").is_file():
            return False
        _create_local_remote(cfg, root, remote)
    return True


def _create_local_remote(cfg: GitOpsConfig, root: Path, remote: str) -> None:
    """Build the bare repository beside its final place and rename it in: a crash leaves
    either no repository or a seeded one."""
    building = Path(f"{remote}.building")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch", cfg.branch,
                    str(building)], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="mlops-seed-") as tmp:
        work = Path(tmp) / "work"
        subprocess.run(["git", "clone", "--quiet", str(building), str(work)], check=True,
                       capture_output=True)
        _identity(work)
        for folder in SEED_FOLDERS:
            src = root / "manifests" / folder
            if src.is_dir():
                shutil.copytree(src, work / cfg.path / folder)
        seed = Checkout(work, cfg, str(building))
        seed.commit("Seed the GitOps repository from the template's manifests/\n\n"
                    "Environment state, rendered manifests and controller objects; from here on\n"
                    "only mlops release, promote and rollback change them.\n")
        seed.push(cfg.branch)
    building.replace(remote)


@contextlib.contextmanager
def checkout(cfg: GitOpsConfig, root: Path, branch: str | None = None) -> Iterator[Checkout]:
    """A fresh clone of ``branch`` (default: the GitOps branch), removed afterwards."""
    remote = resolve_remote(cfg, root)
    ensure_local_remote(cfg, root, remote)
    branch = branch or cfg.branch
    with tempfile.TemporaryDirectory(prefix="mlops-gitops-") as tmp:
        work = Path(tmp) / "work"
        proc = subprocess.run(
            ["git", "clone", "--quiet", "--no-tags", "--branch", branch, remote, str(work)],
            capture_output=True, text=True, env=_git_env(cfg.provider), check=False)
        if proc.returncode != 0:
            raise InfraError(f"cloning the GitOps repository failed: {redact(proc.stderr.strip())}",
                             hint=f"check that {redact(remote)} is reachable and has the branch "
                             f"{branch!r} (set MLOPS_GITOPS_REMOTE / MLOPS_GITOPS_BRANCH)")
        _identity(work)
        yield Checkout(work, cfg, remote)


def trailers(message: str) -> dict[str, str]:
    """Git trailers of a commit message, as git itself parses them."""
    proc = subprocess.run(["git", "interpret-trailers", "--parse"], input=message,
                          capture_output=True, text=True, check=True)
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def format_message(subject: str, body: str, fields: Mapping[str, str]) -> str:
    lines = [subject, "", body.rstrip(), ""] if body else [subject, ""]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"

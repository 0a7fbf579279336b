"""The GitOps repository: a throw-away clone per operation, commits with trailers, and pushes
that either land whole or not at all.

Every operation works in its own temporary clone, so concurrent releases from separate
processes never share a working tree; git's atomic ref update on the remote decides who lands
first, and the others re-apply on top. The embedded default remote is a local bare repository
(.infra/gitops.git), created and seeded from this repository's manifests/ on first use.

A token for an HTTPS remote is handed to git in an environment-borne http.extraHeader, never in
a URL or an argument, and is scrubbed from every error message. Two tokens, two uses:
MLOPS_GITOPS_TOKEN (write; only release, promote and rollback jobs hold it) for everything,
pushes included, and MLOPS_GITOPS_READ_TOKEN (read-only; the pull/merge-request gate reading
production's baseline) for clones and fetches only: a push never carries the read token.

Every git process runs under a deadline (``git_timeout``, MLOPS_GIT_TIMEOUT) in its own process
group, killed whole when the deadline passes: a remote that accepts the connection and then
says nothing must end the job with exit 3, not hang it. A refused push is classified per ref
from ``git push --porcelain``: only a race (the branch moved, or another push holds its lock)
is retried; anything else (a hook, branch protection, missing write access) fails at once,
quoting what the remote said.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import (
    EnvironmentState,
    GitOpsConfig,
    dump_environment,
    is_local_path,
    parse_environment,
    read_settings,
    reveal,
)
from pipelines.config.settings import GITOPS_TOKEN_VARS
from pipelines.core.configure import placeholders, unconfigured
from pipelines.errors import ConfigError, InfraError

# The environment variables of the write token and of the read-only one, in that order.
TOKEN_VARS = GITOPS_TOKEN_VARS
DEFAULT_NAME = "mlops-bot"
DEFAULT_EMAIL = "mlops-bot@users.noreply.invalid"
SEED_FOLDERS = ("environments", "rendered", "controllers")
# The embedded default remote: the only one mlops creates when it is missing.
DEFAULT_REMOTE = str(GitOpsConfig.model_fields["remote"].default)
LOCAL_TIMEOUT_S = 60.0  # git commands that touch no remote
NETWORK_COMMANDS = frozenset({"clone", "fetch", "pull", "push", "ls-remote"})
# A refused ref that means "someone else got there first", per `git push --porcelain`'s summary
# column: the client saw the tip move ([rejected]), or receive-pack lost the race for the ref's
# lock or its old value ([remote rejected]). Everything else is a refusal that retrying repeats.
RACE = re.compile(
    r"^\[rejected\] \((non-fast-forward|fetch first|stale info)\)$"
    # A ref lock held by another push is a race; a name that clashes with an
    # existing ref ("'refs/heads/a' exists; cannot create 'refs/heads/a/b'") is not.
    r"|^\[remote rejected\] \((cannot lock ref(?!.*exists; cannot create)"
    r"|failed to update ref|incorrect old value)"
)


class PushRejected(Exception):
    """The remote moved on since our clone: fetch, re-apply and try again."""


class GitTimeout(InfraError):
    """A git command got no answer within its deadline."""


def run_git(
    args: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    where: str = "",
) -> subprocess.CompletedProcess[str]:
    """``git *args`` with a deadline. git runs in a session of its own and the whole group is
    killed at the deadline: its remote helpers (git-remote-http, ssh) hold our pipes, so
    killing git alone would leave us waiting on them."""
    proc = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        if not where:  # a local command: no remote to blame
            raise GitTimeout(
                f"git {args[0]} did not finish within {timeout:g} s",
                hint="check the disk and the git installation here",
            ) from None
        raise GitTimeout(
            f"git {args[0]} got no answer from {redact(where)} within {timeout:g} s",
            hint="check that the GitOps remote is reachable from here (address, network, "
            "proxy, firewall) and answers git; for a slow but working remote raise "
            "git_timeout in manifests/gitops.yaml (MLOPS_GIT_TIMEOUT)",
        ) from None
    except BaseException:  # KeyboardInterrupt: leave no git behind
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def push_refusal(stdout: str, stderr: str) -> tuple[bool, str]:
    """(is it a race, what the remote said) for a failed ``git push --porcelain``. Per ref
    line: ``<flag>\t<from>:<to>\t<summary>``, flag ``!`` for a refused ref. The remote's own
    words (a hook's message, GitHub's GH006) come on stderr as ``remote:`` lines."""
    refused = [
        line.split("\t")[2].strip()
        for line in stdout.splitlines()
        if line.startswith("!\t") and line.count("\t") >= 2
    ]
    said = [
        line[len("remote:") :].strip()
        for line in stderr.splitlines()
        if line.startswith("remote:") and line[len("remote:") :].strip()
    ]
    if not refused:  # nothing reached a ref: the connection, the auth or the repository failed
        said = [line.strip() for line in stderr.splitlines() if line.strip()]
    race = bool(refused) and all(RACE.search(summary) for summary in refused)
    text = "; ".join(refused + said) or "no reason given"
    return race, redact(text)[-800:]


def redact(text: str) -> str:
    """The text with tokens and URL credentials masked, so that it can be logged or shown."""
    for token in read_settings().tokens:
        value = reveal(token)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    # Credentials embedded in URLs (https://user:secret@host/...)
    return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)


def resolve_remote(cfg: GitOpsConfig, root: Path) -> str:
    """The GitOps remote, with a local path made absolute against the project root."""
    if not is_local_path(cfg.remote):
        return cfg.remote
    return str((root / cfg.remote).resolve())


def back_off(attempt: int) -> float:
    """Sleep before retry ``attempt`` and return for how long. Jittered: racing pushes that
    backed off in lockstep would collide again."""
    pause = random.uniform(0.05, 0.25) * attempt
    time.sleep(pause)
    return pause


def is_default_remote(root: Path, remote: str) -> bool:
    """Whether ``remote`` (resolved) is the embedded default: the only one mlops creates."""
    return Path(remote) == (root / DEFAULT_REMOTE).resolve()


def require_configured(cfg: GitOpsConfig, root: Path) -> None:
    """Refuse, before any work, a run whose releases would go to a remote other than the
    embedded default with the template's placeholders still in gitops.yaml (each commit would
    be refused by Checkout.commit anyway, after training and packaging)."""
    remote = resolve_remote(cfg, root)
    left = [] if is_default_remote(root, remote) else unconfigured(cfg)
    if left:
        raise ConfigError(
            f"releases go to {redact(remote)}, but manifests/gitops.yaml still holds the "
            f"template's placeholder ({'; '.join(left)})",
            hint="run `mlops configure --repo-url URL --registry REG --owners @org/team` and "
            "commit the result (or set MLOPS_GITOPS_REPO_URL); nothing was run",
        )


def _token(*, push: bool) -> str | None:
    """The write token for anything; the read-only token, when there is no write token, for
    anything but a push."""
    env = read_settings()
    token = env.gitops_token or (None if push else env.gitops_read_token)
    return reveal(token) or None


def _git_env(cfg: GitOpsConfig, *, push: bool = False) -> dict[str, str]:
    # git's environment: ours, handed on whole (not a setting mlops reads), plus these. Its
    # GIT_CONFIG_COUNT is read below only to append to the entries it already holds.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    # git's own stall detection, so an HTTP transfer that stops moving ends with git's message
    # (our deadline still bounds the whole command, and covers git:// and ssh too). Set in the
    # environment, so a user's own http.lowSpeed* in git config is overridden: intended.
    config = {"http.lowSpeedLimit": "1000", "http.lowSpeedTime": str(cfg.git_timeout)}
    token = _token(push=push)
    if token:
        user = "oauth2" if cfg.provider == "gitlab" else "x-access-token"
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        config["http.extraHeader"] = f"Authorization: Basic {basic}"
    count = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
    for key, value in config.items():
        env.update({f"GIT_CONFIG_KEY_{count}": key, f"GIT_CONFIG_VALUE_{count}": value})
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    # No GIT_SSH_COMMAND here: it would override a user's core.sshCommand (a deploy key, say);
    # the deadline in run_git bounds ssh as well.
    return env


@dataclass
class Checkout:
    """A working clone of the GitOps branch (or of another branch, for promotions)."""

    work: Path
    cfg: GitOpsConfig
    remote: str
    # Only the embedded default may receive the template's placeholders: it is what `make run`
    # releases to on a fresh clone, and no cluster reads it.
    placeholders_allowed: bool = False

    @property
    def manifests(self) -> Path:
        """The manifests folder inside the checkout."""
        return self.work / self.cfg.path

    def git(self, *args: str, check: bool = True) -> str:
        """Run git in the checkout with the remote's credentials; its stdout (errors redacted)."""
        env = _git_env(self.cfg, push=args[0] == "push")
        proc = run_git(
            list(args),
            cwd=self.work,
            env=env,
            timeout=self.cfg.git_timeout,
            where=self.remote if args[0] in NETWORK_COMMANDS else "",
        )
        if check and proc.returncode != 0:
            raise InfraError(
                f"git {args[0]} failed in the GitOps checkout: "
                f"{redact(proc.stderr.strip() or proc.stdout.strip())[-800:]}"
            )
        return proc.stdout

    def state_path(self, env: str) -> Path:
        """The file holding an environment's state."""
        return self.manifests / "environments" / f"{env}.yaml"

    def read_state(self, env: str) -> EnvironmentState:
        """An environment's state; a usage error naming the known environments if it has none."""
        path = self.state_path(env)
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.yaml"))
            raise ConfigError(
                f"environment {env!r} does not exist in the GitOps repository",
                hint=f"known environments: {', '.join(known) or 'none'}",
            )
        return parse_environment(path, path.read_text(encoding="utf-8"))

    def write_state(self, state: EnvironmentState) -> None:
        """Write an environment's state back to its file."""
        path = self.state_path(state.environment)
        path.write_text(dump_environment(state), encoding="utf-8")

    def rendered_state(self, env: str) -> EnvironmentState | None:
        """``env``'s state as of the newest commit that changed rendered/<env>/: what its
        rendering on the tip was made from (None: never rendered, or no state file then)."""
        rendered = (self.manifests / "rendered" / env).relative_to(self.work)
        sha = self.git("log", "-1", "--format=%H", "--", str(rendered)).strip()
        if not sha:
            return None
        path = self.state_path(env)
        text = self.git("show", f"{sha}:{path.relative_to(self.work).as_posix()}", check=False)
        return parse_environment(path, text) if text else None

    def history(self, env: str, limit: int = 200) -> list[dict[str, str]]:
        """The trailers of the newest ``limit`` commits that changed ``env``'s state, newest
        first (one git call: git formats the trailers itself)."""
        out = self.git(
            "log",
            f"-n{limit}",
            "--format=%(trailers:unfold,separator=%x1f)%x1e",
            "--",
            str(self.state_path(env).relative_to(self.work)),
        )
        entries = [_fields(entry.strip().split("\x1f")) for entry in out.split("\x1e")]
        return entries[:-1] if entries and not entries[-1] else entries

    def head(self) -> str:
        """The commit the checkout is at."""
        return self.git("rev-parse", "HEAD").strip()

    def commit(self, message: str) -> str | None:
        """Stage everything under the manifests folder and commit; None if nothing changed.
        Refused (ConfigError, nothing committed) while a template placeholder would be
        committed to a remote other than the embedded default."""
        if not self.placeholders_allowed:
            self.require_no_placeholders()
        self.git("add", "--all", "--", self.cfg.path)
        if not self.git("status", "--porcelain", "--", self.cfg.path).strip():
            return None
        self.git("commit", "--quiet", "--file", self._message_file(message))
        return self.head()

    def require_no_placeholders(self) -> None:
        """Refuse while the manifests folder, as it would be committed, holds a placeholder of
        the template (a controller fetching `your-org/your-gitops-repo` syncs nothing)."""
        files = {
            p.relative_to(self.work).as_posix(): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(self.manifests.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(self.work).parts
        }
        found = placeholders(files)
        if found:
            listing = "\n".join(f"  - {f}" for f in found[:20])
            more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
            raise ConfigError(
                f"the template's placeholders would be committed to the GitOps remote "
                f"{redact(self.remote)}:\n{listing}{more}",
                hint="run `mlops configure --repo-url URL --registry REG --owners @org/team` "
                "and commit the result (MLOPS_GITOPS_REPO_URL also sets repo_url); nothing "
                "was committed or pushed",
            )

    def _message_file(self, message: str) -> str:
        path = self.work.parent / "COMMIT_MSG"
        path.write_text(message, encoding="utf-8")
        return str(path)

    def push(self, branch: str, *, force: bool = False) -> None:
        """Push HEAD to ``branch``. PushRejected when we lost a race for the branch (retry);
        InfraError, quoting the remote, for any other refusal (retrying would not help)."""
        args = ["push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}"]
        if force:
            args.insert(1, "--force")
        proc = run_git(
            args,
            cwd=self.work,
            env=_git_env(self.cfg, push=True),
            timeout=self.cfg.git_timeout,
            where=self.remote,
        )
        if proc.returncode == 0:
            return
        race, said = push_refusal(proc.stdout, proc.stderr)
        if race:
            raise PushRejected(said)
        raise InfraError(
            f"the GitOps remote {redact(self.remote)} refused the push to {branch}: {said}",
            hint="not retried: this is not a race with another push. Check the "
            "remote's branch protection and hooks, and that the credential "
            "(MLOPS_GITOPS_TOKEN; never MLOPS_GITOPS_READ_TOKEN) may write to it",
        )

    def push_request_branch(self, branch: str, attempts: int = 5) -> None:
        """Force-push HEAD to a request branch of ours. Another job pushing the same request at
        the same moment makes receive-pack refuse one of us (ref lock, old value): the branch
        is ours either way, so push again, a few times."""
        for attempt in range(1, attempts + 1):
            try:
                self.push(branch, force=True)
                return
            except PushRejected as exc:
                last = str(exc)
                back_off(attempt)
        raise InfraError(
            f"another job kept pushing {branch} at the same time ({last})",
            hint="another promotion or rollback of the same release is running; "
            "let it finish, then re-run if its request is not open",
        )

    def sync(self, branch: str) -> None:
        """Throw local work away and stand on the remote's tip of ``branch``."""
        self.git("fetch", "--quiet", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        self.git("checkout", "--quiet", "-B", branch, f"origin/{branch}")
        self.git("reset", "--quiet", "--hard", f"origin/{branch}")
        self.git("clean", "--quiet", "-fdx")


def _identity(work: Path) -> None:
    """Commits need an author: MLOPS_GIT_NAME / MLOPS_GIT_EMAIL when set, else the user's git
    identity, else the bot's. The variables win over a runner's git config: CI recognises
    mlops's own commits by this author (MLOPS_BOT_AUTHOR in .gitlab-ci.yml)."""
    env = read_settings()
    for key, chosen, fallback in (
        ("user.name", env.git_name, DEFAULT_NAME),
        ("user.email", env.git_email, DEFAULT_EMAIL),
    ):
        if (
            not chosen
            and run_git(["config", key], cwd=work, timeout=LOCAL_TIMEOUT_S).stdout.strip()
        ):
            continue
        _checked(["config", key, chosen or fallback], cwd=work)


def _checked(args: list[str], cwd: Path | None = None) -> None:
    proc = run_git(args, cwd=cwd, timeout=LOCAL_TIMEOUT_S)
    if proc.returncode != 0:
        raise InfraError(f"git {args[0]} failed: {redact(proc.stderr.strip())[-600:]}")


def is_repository(path: Path) -> bool:
    """Whether the path is a git repository, bare or not."""
    return (path / "HEAD").is_file() or (path / ".git").exists()


def ensure_local_remote(cfg: GitOpsConfig, root: Path, remote: str) -> bool:
    """Create and seed the embedded local GitOps repository if it is missing; True if made.
    Any other configured path must exist already: a typo must not become a new, empty
    GitOps repository that releases go to and no controller reads."""
    if not is_local_path(cfg.remote) or is_repository(Path(remote)):
        return False
    path = Path(remote)
    if not is_default_remote(root, remote):
        raise InfraError(
            f"the GitOps remote {path} does not exist or is not a git repository",
            hint="fix remote in manifests/gitops.yaml (or MLOPS_GITOPS_REMOTE), or "
            "create that repository; only the embedded default "
            f"{DEFAULT_REMOTE} is created automatically",
        )
    if path.exists() or path.is_symlink():
        raise InfraError(
            f"{path} exists but is not a git repository",
            hint="move it away: mlops creates the embedded GitOps repository there on first use",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Racing first releases must not seed twice: one creates, the others wait and use it.
        # The lock is the folder itself, so no lock file is left behind.
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _unusable(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if is_repository(path):
            return False
        _create_local_remote(cfg, root, path)
    finally:
        os.close(fd)
    return True


def _unusable(path: Path, exc: OSError) -> InfraError:
    return InfraError(
        f"cannot create the embedded GitOps repository at {path}: "
        f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""),
        hint=f"{path.parent} must be a folder this user can write (it holds local "
        "infrastructure state); or set MLOPS_GITOPS_REMOTE to an existing repository",
    )


def _create_local_remote(cfg: GitOpsConfig, root: Path, remote: Path) -> None:
    """Build the bare repository beside its final place and rename it in: a crash leaves
    either no repository or a seeded one, and a failure leaves nothing at all."""
    try:
        building = Path(tempfile.mkdtemp(prefix=f".{remote.name}.building-", dir=remote.parent))
    except OSError as exc:
        raise _unusable(remote, exc) from None
    try:
        _checked(["init", "--quiet", "--bare", "--initial-branch", cfg.branch, str(building)])
        with tempfile.TemporaryDirectory(prefix="mlops-seed-") as tmp:
            work = Path(tmp) / "work"
            _checked(["clone", "--quiet", str(building), str(work)])
            _identity(work)
            for folder in SEED_FOLDERS:
                src = root / "manifests" / folder
                if src.is_dir():
                    shutil.copytree(src, work / cfg.path / folder)
            seed = Checkout(work, cfg, str(building), placeholders_allowed=True)
            seed.commit(
                "Seed the GitOps repository from the template's manifests/\n\n"
                "Environment state, rendered manifests and controller objects; from here "
                "on\nonly mlops release, promote and rollback change them.\n"
            )
            seed.push(cfg.branch)
        building.replace(remote)
    except OSError as exc:
        raise _unusable(remote, exc) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)


@contextlib.contextmanager
def checkout(cfg: GitOpsConfig, root: Path, branch: str | None = None) -> Iterator[Checkout]:
    """A fresh clone of ``branch`` (default: the GitOps branch), removed afterwards."""
    remote = resolve_remote(cfg, root)
    ensure_local_remote(cfg, root, remote)
    branch = branch or cfg.branch
    with tempfile.TemporaryDirectory(prefix="mlops-gitops-") as tmp:
        work = Path(tmp) / "work"
        proc = run_git(
            ["clone", "--quiet", "--no-tags", "--branch", branch, remote, str(work)],
            env=_git_env(cfg),
            timeout=cfg.git_timeout,
            where=remote,
        )
        if proc.returncode != 0:
            raise InfraError(
                f"cloning the GitOps repository failed: {redact(proc.stderr.strip())}",
                hint=f"check that {redact(remote)} is reachable and has the branch "
                f"{branch!r} (set MLOPS_GITOPS_REMOTE / MLOPS_GITOPS_BRANCH)",
            )
        _identity(work)
        yield Checkout(work, cfg, remote, placeholders_allowed=is_default_remote(root, remote))


def trailers(message: str) -> dict[str, str]:
    """Git trailers of a commit message, as git itself parses them."""
    proc = run_git(["interpret-trailers", "--parse"], input=message, timeout=LOCAL_TIMEOUT_S)
    if proc.returncode != 0:
        raise InfraError(f"git interpret-trailers failed: {proc.stderr.strip()[-300:]}")
    return _fields(proc.stdout.splitlines())


def _fields(lines: list[str]) -> dict[str, str]:
    """ "Key: value" trailer lines as a mapping; the first of a repeated key counts."""
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def format_message(subject: str, body: str, fields: Mapping[str, str]) -> str:
    """A commit message: subject, optional body, then the fields as git trailers."""
    lines = [subject, "", body.rstrip(), ""] if body else [subject, ""]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"

"""The GitOps remote misbehaving, on real git: hooks and read-only remotes that refuse pushes,
remotes that do not exist or cannot be created, a server that accepts connections and never
answers, and promotions of one release racing each other."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.adapters import gitops
from pipelines.config import load_model
from pipelines.errors import InfraError
from pipelines.stages import promote, rollback
from pipelines.stages.release import publish
from tests.conftest import ROOT, copy_repo
from tests.integration.test_gitops import (
    commits,
    evidence,
    git,
    main_in,
    release,
    remote,
)
from tests.unit.core.test_bluegreen import record
from tests.util import free_port

SECRET = "ghp_hookEchoedThisToken42"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def decline(root: Path, hook: str) -> None:
    """A server-side hook on the remote that refuses every push with a message (and, to prove
    redaction, the credential it was handed)."""
    path = remote(root) / "hooks" / hook
    path.write_text(
        '#!/bin/sh\necho "GL-HOOK-ERR: $MLOPS_GITOPS_TOKEN pushes to this branch '
        'need a review" >&2\nexit 1\n'
    )
    path.chmod(0o755)


def _pr_mode_rollback(root: Path) -> None:
    path = root / "manifests/environments/staging.yaml"
    path.write_text(path.read_text().replace("rollback: direct", "rollback: pr"))


@pytest.mark.parametrize("hook", ["pre-receive", "update"])
def test_a_push_refused_by_a_hook_fails_at_once_quoting_the_remote(
    root: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_GITOPS_TOKEN", SECRET)
    release(root, 1)
    decline(root, hook)
    said: list[str] = []
    before = commits(root)
    with pytest.raises(InfraError) as caught:
        publish(root, load_model(root, "digits"), "staging", record(2), progress=said.append)
    message = str(caught.value)
    assert caught.value.exit_code == 3
    assert "refused the push to main" in message
    assert "GL-HOOK-ERR: *** pushes to this branch need a review" in message
    assert "hook declined" in message
    assert "not retried" in message
    assert SECRET not in message
    assert said == []  # no "moved on; re-applying": a hook is not a race
    assert commits(root) == before


def test_promotion_and_pr_rollback_refused_by_a_hook_are_exit_3_with_the_message(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_GITOPS_TOKEN", SECRET)
    _pr_mode_rollback(root)
    release(root, 1)
    release(root, 2)
    evidence(root, record(2))
    decline(root, "pre-receive")
    ws = load_model(root, "digits")
    for run in (
        lambda: promote.run(ws, "production", "staging", progress=print),
        lambda: rollback.run(ws, "staging", progress=print),
    ):
        with pytest.raises(InfraError, match="GL-HOOK-ERR: \\*\\*\\* pushes") as caught:
            run()
        assert "pre-receive hook declined" in str(caught.value)
    capsys.readouterr()
    assert main_in(root, "rollback", "--env", "staging") == 3
    err = capsys.readouterr().err
    assert "refused the push to rollback/staging/digits-000000000002" in err
    assert "Traceback" not in err
    assert SECRET not in err
    assert not (root / ".infra/pull-requests/index.json").exists()  # no request without a branch


# What `mlops configure` would have set: any remote but the embedded default refuses the
# template's placeholder.
CONFIGURED_REPO_URL = "https://github.com/acme/gitops.git"


@pytest.fixture
def read_only_remote(root: Path) -> Iterator[str]:
    """The GitOps repository served by git daemon, which serves fetches and refuses pushes
    (receive-pack is not enabled): a remote this identity may read and may not write."""
    release(root, 1)
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={remote(root).parent}",
            str(remote(root).parent),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"git://127.0.0.1:{port}/gitops.git"
        for _ in range(100):
            if (
                subprocess.run(
                    ["git", "ls-remote", url], capture_output=True, timeout=10
                ).returncode
                == 0
            ):
                break
        yield url
    finally:
        daemon.kill()
        daemon.wait()


def test_a_read_only_remote_fails_release_promote_and_rollback_with_exit_3(
    root: Path, read_only_remote: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pr_mode_rollback(root)
    release(root, 2)
    evidence(root, record(2))
    monkeypatch.setenv("MLOPS_GITOPS_REMOTE", read_only_remote)
    # Not the embedded default: without a configured repo_url the placeholder check (exit 2)
    # would refuse before the remote is asked.
    monkeypatch.setenv("MLOPS_GITOPS_REPO_URL", CONFIGURED_REPO_URL)
    ws = load_model(root, "digits")
    for run in (
        lambda: publish(root, ws, "staging", record(3), progress=print),
        lambda: promote.run(ws, "production", "staging", progress=print),
        lambda: rollback.run(ws, "staging", progress=print),
    ):
        with pytest.raises(InfraError, match="access denied") as caught:
            run()
        assert caught.value.exit_code == 3


def test_only_a_lost_race_counts_as_one() -> None:
    race, said = gitops.push_refusal(
        "To /r.git\n!\tHEAD:refs/heads/main\t[rejected] (fetch first)\nDone\n", ""
    )
    assert race
    assert said == "[rejected] (fetch first)"
    assert gitops.push_refusal(
        "!\tHEAD:refs/heads/main\t[remote rejected] (cannot lock ref 'refs/heads/main': is at "
        "1 but expected 2)\n",
        "",
    )[0]
    for stdout, stderr in [
        (
            "!\tHEAD:refs/heads/main\t[remote rejected] (pre-receive hook declined)\n",
            "remote: rejected: non-fast-forward pushes are not allowed here\n",
        ),
        (
            "!\tHEAD:refs/heads/main\t[remote rejected] (protected branch hook declined)\n",
            "remote: error: GH006: Protected branch update failed for refs/heads/main.\n",
        ),
        ("", "fatal: unable to access 'https://x/': The requested URL returned error: 403\n"),
        (
            "!\tHEAD:refs/heads/promote/production/x\t[remote rejected] (cannot lock ref "
            "'refs/heads/promote/production/x': 'refs/heads/promote/production' exists; cannot "
            "create 'refs/heads/promote/production/x')\n",
            "",
        ),
        (
            "!\tHEAD:refs/heads/a\t[rejected] (non-fast-forward)\n"
            "!\tHEAD:refs/heads/b\t[remote rejected] (hook declined)\n",
            "",
        ),
    ]:
        race, said = gitops.push_refusal(stdout, stderr)
        assert not race, said
    assert (
        "GH006"
        in gitops.push_refusal(
            "!\tHEAD:refs/heads/main\t[remote rejected] (protected branch hook declined)\n",
            "remote: error: GH006: Protected branch update failed.   \n",
        )[1]
    )


PROMOTER = """
import sys, time
from pathlib import Path
from pipelines.config import load_model
from pipelines.errors import MlopsError
from pipelines.stages import promote
root, gate = Path(sys.argv[1]), Path(sys.argv[2])
(gate / sys.argv[3]).touch()
while not (gate / "go").exists():  # start together, imports done: the race is the point
    time.sleep(0.005)
try:
    print(promote.run(load_model(root, "digits"), "production", "staging",
                      progress=lambda _: None).detail)
except MlopsError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def _race_promotions(root: Path, n: int) -> list[subprocess.CompletedProcess[str]]:
    gate = root.parent / "gate"
    shutil.rmtree(gate, ignore_errors=True)
    gate.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROMOTER, str(root), str(gate), f"r{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for i in range(n)
    ]
    for i in range(n):
        while not (gate / f"r{i}").exists() and procs[i].poll() is None:
            time.sleep(0.01)
    (gate / "go").touch()
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_concurrent_promotions_of_one_release_all_exit_cleanly_leaving_one_request(
    root: Path,
) -> None:
    release(root, 1)
    evidence(root, record(1))
    for p in _race_promotions(root, 6):
        assert "Traceback" not in p.stderr, p.stderr[-2000:]
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.startswith(("opened #1", "updated #1")), p.stdout
    index = json.loads((root / ".infra/pull-requests/index.json").read_text())
    assert [n for n, pr in index.items() if pr["state"] == "open"] == ["1"]
    assert "promote/production/digits-000000000001" in git(remote(root), "branch", "--list")


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_concurrent_promotions_through_a_provider_leave_one_request(
    root: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from tests.fakes.scm_api import TOKEN, serve

    release(root, 1)
    evidence(root, record(1))
    for api in serve(kind):
        monkeypatch.setenv("MLOPS_SCM_PROVIDER", kind)
        if kind == "github":
            monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
            monkeypatch.setenv("GITHUB_API_URL", api.url)
            monkeypatch.setenv("GITHUB_REPOSITORY", api.state.repo)
        else:
            monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
            monkeypatch.setenv("CI_API_V4_URL", api.url)
            monkeypatch.setenv("CI_PROJECT_ID", api.state.project)
        for p in _race_promotions(root, 4):
            assert "Traceback" not in p.stderr, p.stderr[-2000:]
            assert p.returncode == 0, p.stderr[-2000:]
        assert [n for n, pr in api.state.pulls.items() if pr["state"] in ("open", "opened")] == [1]


def _leftovers(folder: Path) -> list[str]:
    return (
        sorted(
            p.name for p in folder.rglob("*") if p.name.endswith(".lock") or ".building" in p.name
        )
        if folder.is_dir()
        else []
    )


def test_a_configured_remote_that_does_not_exist_is_exit_3_and_is_not_created(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A relative path that leaves the repository is refused earlier, as a configuration error
    # (tests/unit/test_paths.py); these are paths the configuration allows.
    for configured in (
        str(tmp_path / "typo" / "gitops.git"),
        "gitops-typo.git",
        ".infra/gitops-typo.git",
    ):
        monkeypatch.setenv("MLOPS_GITOPS_REMOTE", configured)
        assert main_in(root, "status", "--no-live") == 3
        err = capsys.readouterr().err
        assert "does not exist or is not a git repository" in err, err
        assert "only the embedded default .infra/gitops.git is created automatically" in err
        assert not (root / configured).exists()  # an absolute one stays absolute
    assert not (tmp_path / "typo").exists()
    assert not remote(root).exists()


def test_the_embedded_default_is_created_and_leaves_no_lock_behind(root: Path) -> None:
    release(root, 1)
    assert (remote(root) / "HEAD").is_file()
    assert _leftovers(root / ".infra") == []
    assert not Path(f"{remote(root)}.lock").exists()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        ("infra-is-a-file", "cannot create the embedded GitOps repository"),
        ("remote-is-a-file", "exists but is not a git repository"),
        ("remote-is-an-empty-folder", "exists but is not a git repository"),
    ],
)
def test_an_unusable_default_remote_path_is_a_clear_error_and_leaves_nothing(
    root: Path, make: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    infra = root / ".infra"
    if make == "infra-is-a-file":
        infra.write_text("not a folder")
    else:
        infra.mkdir(exist_ok=True)
        if make == "remote-is-a-file":
            remote(root).write_text("x")
        else:
            remote(root).mkdir()
    before = sorted(p.name for p in infra.iterdir()) if infra.is_dir() else None
    assert main_in(root, "status", "--no-live") == 3
    err = capsys.readouterr().err
    assert says in err, err
    assert "Traceback" not in err
    assert (sorted(p.name for p in infra.iterdir()) if infra.is_dir() else None) == before
    assert _leftovers(root / ".infra") == []


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()
        for conn in held:
            conn.close()


STATUS = "import sys\nfrom pipelines.cli import main\nsys.exit(main(['status', '--no-live']))\n"


@pytest.mark.parametrize("scheme", ["http", "git"])
def test_a_remote_that_never_answers_ends_in_exit_3(
    root: Path, silent_server: int, scheme: str
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MLOPS_GIT_TIMEOUT": "2",
        "MLOPS_GITOPS_REMOTE": f"{scheme}://127.0.0.1:{silent_server}/gitops.git",
    }
    proc = subprocess.run(
        [sys.executable, "-c", STATUS],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "got no answer from" in proc.stderr
    assert "within 2 s" in proc.stderr
    assert "check that the GitOps remote is reachable" in proc.stderr
    assert "MLOPS_GIT_TIMEOUT" in proc.stderr


def test_the_git_timeout_is_a_typed_setting(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.config import load_gitops

    assert load_gitops(root).git_timeout == 120
    monkeypatch.setenv("MLOPS_GIT_TIMEOUT", "7")
    assert load_gitops(root).git_timeout == 7
    for bad in ("soon", "0", "1.5"):
        monkeypatch.setenv("MLOPS_GIT_TIMEOUT", bad)
        assert main_in(root, "status", "--no-live") == 2
        assert "git_timeout" in capsys.readouterr().err


def test_an_unusable_local_requests_folder_is_exit_3_not_a_traceback(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release(root, 1)
    evidence(root, record(1))
    (root / ".infra/pull-requests").write_text("not a folder")
    assert main_in(root, "promote", "--to", "production") == 3
    err = capsys.readouterr().err
    assert "cannot keep local requests in" in err
    assert "Traceback" not in err


def test_a_push_the_remote_never_finishes_ends_in_exit_3(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote takes the push and then hangs (here: in its pre-receive hook). The whole
    process group goes at the deadline: git, receive-pack and the hook alike."""
    release(root, 1)
    hook = remote(root) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nsleep 60\n")
    hook.chmod(0o755)
    monkeypatch.setenv("MLOPS_GIT_TIMEOUT", "3")
    before = commits(root)
    with pytest.raises(InfraError, match=r"git push got no answer from .* within 3 s") as caught:
        publish(root, load_model(root, "digits"), "staging", record(2), progress=print)
    assert caught.value.exit_code == 3
    hook.unlink()
    assert commits(root) == before
    assert release(root, 3) is not None  # and the remote still takes releases


def test_the_bot_identity_wins_over_the_runners_git_config(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI skips pipelines for mlops's own commits by their author: a runner whose git config
    names someone else must not change it when MLOPS_GIT_NAME / MLOPS_GIT_EMAIL are set."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = runner\n\temail = runner@ci.invalid\n")
    monkeypatch.setenv("HOME", str(home))
    for var in (
        "GIT_CONFIG_GLOBAL",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(var, raising=False)
    release(root, 1)
    assert (
        git(remote(root), "log", "-1", "--format=%an <%ae>").strip() == "runner <runner@ci.invalid>"
    )  # no variables: the user's own identity
    monkeypatch.setenv("MLOPS_GIT_NAME", "mlops-bot")
    monkeypatch.setenv("MLOPS_GIT_EMAIL", "mlops-bot@users.noreply.invalid")
    release(root, 2)
    assert (
        git(remote(root), "log", "-1", "--format=%an <%ae>").strip()
        == "mlops-bot <mlops-bot@users.noreply.invalid>"
    )


# ---------------------------------------------------------------------------------------------
# The read-only token (MLOPS_GITOPS_READ_TOKEN) fetches, and is never sent with a push.

READ_SECRET = "glpat-readOnlyToken0123"
WRITE_SECRET = "glpat-writeToken456789"


def _token_of(header: str | None) -> str:
    """Which token a request's Basic auth carries: "read", "write", "other" or "none"."""
    if not header or not header.startswith("Basic "):
        return "none"
    secret = base64.b64decode(header[6:]).decode().partition(":")[2]
    return {READ_SECRET: "read", WRITE_SECRET: "write"}.get(secret, "other")


class _GitHttpHandler(BaseHTTPRequestHandler):
    # Set per server (GitHttpServer makes a subclass): the repositories' folder, and the
    # (service, token) of each request, in order.
    project_root: Path
    seen: list[tuple[str, str]]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.handle_git()

    def do_POST(self) -> None:
        self.handle_git()

    def handle_git(self) -> None:
        path, _, query = self.path.partition("?")
        service = "receive-pack" if "receive-pack" in self.path else "upload-pack"
        token = _token_of(self.headers.get("Authorization"))
        self.seen.append((service, token))
        allowed = {"write"} if service == "receive-pack" else {"read", "write"}
        if token not in allowed:
            self.send_response(401 if token == "none" else 403)
            self.send_header("WWW-Authenticate", 'Basic realm="gitops"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            **os.environ,
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "REMOTE_USER": token,
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        ).stdout
        self._relay_cgi(out)

    def _relay_cgi(self, out: bytes) -> None:
        """Send a CGI response (headers, a blank line, the payload) as this HTTP response."""
        head, found, payload = out.partition(b"\r\n\r\n")
        if not found:
            head, _, payload = out.partition(b"\n\n")
        headers = [line.split(":", 1) for line in head.decode().splitlines() if line]
        status = next((v.strip() for k, v in headers if k.lower() == "status"), "200")
        self.send_response(int(status.split()[0]))
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitHttpServer:
    """The GitOps repository served by `git http-backend` (git's smart HTTP), behind Basic auth
    with two tokens: the read token may fetch, only the write token may push. Records, per
    request, the service and which token (if any) came with it."""

    def __init__(self, project_root: Path) -> None:
        self.seen: list[tuple[str, str]] = []
        handler = type(
            "Handler", (_GitHttpHandler,), {"project_root": project_root, "seen": self.seen}
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gitops.git"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_remote(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHttpServer]:
    release(root, 1)  # the embedded repository, with a release, then served over HTTP
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=remote(root), check=True)
    server = GitHttpServer(remote(root).parent)
    monkeypatch.setenv("MLOPS_GITOPS_REMOTE", server.url)
    monkeypatch.setenv("MLOPS_GITOPS_REPO_URL", CONFIGURED_REPO_URL)  # a configured fork
    for var in gitops.TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)
    yield server
    server.close()


def test_the_read_token_fetches_and_is_never_sent_with_a_push(
    root: Path, http_remote: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a pull/merge-request gate holds: the read token reads production's state; a push
    (a release) carries no token at all, and fails with exit 3."""
    from pipelines.config import load_gitops

    monkeypatch.setenv("MLOPS_GITOPS_READ_TOKEN", READ_SECRET)
    with gitops.checkout(load_gitops(root), root) as repo:
        assert repo.read_state("staging").models["digits"].active is not None
    assert http_remote.seen
    assert {t for _, t in http_remote.seen} == {"read"}
    http_remote.seen.clear()
    before = commits(root)
    with pytest.raises(InfraError) as caught:
        publish(root, load_model(root, "digits"), "staging", record(2), progress=print)
    assert caught.value.exit_code == 3
    assert READ_SECRET not in str(caught.value)
    pushes = [t for service, t in http_remote.seen if service == "receive-pack"]
    assert pushes, http_remote.seen
    assert set(pushes) == {"none"}, http_remote.seen
    assert ("upload-pack", "read") in http_remote.seen  # the clone before it did read
    assert commits(root) == before


def test_the_write_token_pushes(
    root: Path, http_remote: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release job: the write token (and the read token beside it, which is not used)."""
    monkeypatch.setenv("MLOPS_GITOPS_TOKEN", WRITE_SECRET)
    monkeypatch.setenv("MLOPS_GITOPS_READ_TOKEN", READ_SECRET)
    assert release(root, 2) is not None
    assert {t for _, t in http_remote.seen} == {"write"}
    assert ("receive-pack", "write") in http_remote.seen
    assert commits(root)[-1]["subject"].startswith("release(staging): digits digits-000000000002")


def test_the_read_token_is_redacted_like_the_write_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_GITOPS_READ_TOKEN", READ_SECRET)
    assert gitops.redact(f"fatal: {READ_SECRET} was refused") == "fatal: *** was refused"

"""Pull/merge requests and their comments on GitHub (REST v3), GitLab (REST v4), or locally.

One call, ``open_or_update``, finds the open request for a branch and updates it in place, or
opens it: re-running a promotion never makes a duplicate. ``upsert_comment`` does the same for
the CI report comment, found again by a hidden marker. ``list_open`` and ``close`` let a newer
promotion close the ones it supersedes. Tokens come from the environment
(GITHUB_TOKEN; GITLAB_TOKEN or CI_JOB_TOKEN), go only into request headers, and never appear
in output, logs or errors. Rate limits are waited out when the wait is short (Retry-After),
and every retry is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from pipelines.adapters.artifacts import write_json, write_text
from pipelines.adapters.gitops import redact
from pipelines.config import GitOpsConfig, read_settings, reveal
from pipelines.errors import ConfigError, InfraError

TIMEOUT = 30
_sleep = time.sleep  # one seam, so tests can record waits instead of sleeping
ATTEMPTS = 4
MAX_WAIT_S = 60.0


@dataclass(frozen=True)
class PullRequest:
    """A pull (merge) request, and whether this call created it."""

    number: int
    url: str
    created: bool
    head: str = ""
    base: str = ""


KINDS = ("promote", "rollback")


def request_branch(kind: str, env: str, release_id: str = "") -> str:
    """``<kind>/<env>/<release-id>``: the branch of a promotion or rollback request. Without a
    release id, the prefix shared by every such request for ``env``."""
    return f"{kind}/{env}/{release_id}"


def parse_request_branch(name: str) -> tuple[str, str, str] | None:
    """(kind, env, release id) of a branch made by ``request_branch``, else None."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] not in KINDS or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


class Provider(Protocol):
    """A place that hosts pull requests: GitHub, GitLab, or a local folder."""

    name: str

    def open_or_update(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a request from head into base, or update the open one; it is idempotent."""

    def find_open(self, *, head: str, base: str) -> PullRequest | None:
        """The open request from head into base, if there is one."""

    def list_open(self, *, base: str) -> list[PullRequest]:
        """The open requests into base."""

    def close(self, number: int) -> None:
        """Close a request without merging it."""

    def upsert_comment(self, number: int, marker: str, body: str) -> str:
        """Post the comment, or replace the one carrying marker; where it can be read."""

    def changed_files(self, number: int) -> list[str] | None:
        """The paths a request's change touches (both sides of a rename), or None where the
        provider cannot say (the local one)."""


class ApiError(ConfigError):
    """The provider refused a request for a reason other than access (a 4xx such as 409 or
    422): the request or the repository's state is wrong, so it is exit 2, not a crash."""


class _Http:
    """requests with bounded retries on 5xx, connection errors and short rate limits."""

    def __init__(self, api_url: str, headers: dict[str, str], what: str) -> None:
        self.api = api_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.what = what

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        answers: tuple[int, ...] = (),
    ) -> requests.Response:
        """The response; 4xx raise, but for the statuses in ``answers``, which the caller
        reads as an answer (such as 404: there is none)."""
        url = path if path.startswith("http") else f"{self.api}{path}"
        last = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                r = self.session.request(
                    method, url, json=json_body, params=params, timeout=TIMEOUT
                )
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}"
                _sleep(min(2**attempt, 8))
                continue
            wait = _rate_limit_wait(r)
            if wait is not None:
                if wait > MAX_WAIT_S or attempt == ATTEMPTS:
                    raise InfraError(
                        f"{self.what} rate limit reached; it resets in {wait:.0f} s",
                        hint="re-run the job later, or use a token with a higher limit",
                    )
                _sleep(wait)
                continue
            if r.status_code >= 500:
                last = f"HTTP {r.status_code}"
                _sleep(min(2**attempt, 8))
                continue
            if r.status_code >= 400 and r.status_code not in answers:
                self._fail(method, path, r)
            return r
        raise InfraError(
            f"{self.what} API unavailable after {ATTEMPTS} attempts ({last})",
            hint="the provider may be down; re-run the job later",
        )

    def _fail(self, method: str, path: str, r: requests.Response) -> None:
        try:
            detail = r.json()
        except ValueError:
            detail = r.text[:300]
        message = redact(json.dumps(detail) if not isinstance(detail, str) else detail)
        where = f"{self.what} {method} {path}"
        if r.status_code == 401:
            raise ConfigError(
                f"{where}: 401 Unauthorized: the token was refused",
                hint="check that the token is set, valid and not expired",
            )
        if r.status_code in (403, 404):
            raise ConfigError(
                f"{where}: {r.status_code}: {message}",
                hint="the repository/project may be wrong, or the token lacks "
                "access to it (pull requests: write)",
            )
        raise ApiError(f"{where}: HTTP {r.status_code}: {message}")

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: dict[str, Any] | None = {**params, "per_page": 100}
        while url:
            r = self.call("GET", url, params=query)
            yield from r.json()
            url = r.links.get("next", {}).get("url")
            query = None  # the next link carries the query


def _rate_limit_wait(r: requests.Response) -> float | None:
    if r.status_code not in (403, 429):
        return None
    if "Retry-After" in r.headers:
        try:
            return max(0.0, float(r.headers["Retry-After"]))
        except ValueError:
            return MAX_WAIT_S + 1
    if r.headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in r.headers:
        return max(0.0, float(r.headers["x-ratelimit-reset"]) - time.time())
    return None if r.status_code == 403 else 5.0  # 429 without a hint: a short pause


class GitHub:
    """Pull requests on GitHub through its REST API."""

    name = "github"

    def __init__(self, cfg: GitOpsConfig) -> None:
        token = reveal(read_settings().github_token)
        if not token:
            raise ConfigError(
                "the github provider needs GITHUB_TOKEN",
                hint="in Actions: env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }} "
                "with permissions pull-requests: write",
            )
        if not cfg.github.repository:
            raise ConfigError(
                "github.repository is not set (owner/name)",
                hint="set it in manifests/gitops.yaml or GITHUB_REPOSITORY",
            )
        self.repo = cfg.github.repository
        self.http = _Http(
            cfg.github.api_url,
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "mlops-gitops",
            },
            "GitHub",
        )

    def _pr(self, doc: dict[str, Any], created: bool) -> PullRequest:
        return PullRequest(
            int(doc["number"]),
            str(doc["html_url"]),
            created,
            str(doc["head"]["ref"]),
            str(doc["base"]["ref"]),
        )

    def find_open(self, *, head: str, base: str) -> PullRequest | None:
        """The open pull request from head into base, if there is one."""
        owner = self.repo.split("/")[0]
        found = self.http.call(
            "GET",
            f"/repos/{self.repo}/pulls",
            params={"head": f"{owner}:{head}", "base": base, "state": "open"},
        ).json()
        return self._pr(found[0], False) if found else None

    def list_open(self, *, base: str) -> list[PullRequest]:
        """The open pull requests into base."""
        return [
            self._pr(doc, False)
            for doc in self.http.pages(f"/repos/{self.repo}/pulls", {"state": "open", "base": base})
        ]

    def close(self, number: int) -> None:
        """Close a pull request without merging it."""
        self.http.call("PATCH", f"/repos/{self.repo}/pulls/{number}", json_body={"state": "closed"})

    def open_or_update(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a pull request, or update the title and body of the open one."""
        existing = self.find_open(head=head, base=base)
        if existing is not None:
            doc = self.http.call(
                "PATCH",
                f"/repos/{self.repo}/pulls/{existing.number}",
                json_body={"title": title, "body": body},
            ).json()
            return self._pr(doc, False)
        try:
            doc = self.http.call(
                "POST",
                f"/repos/{self.repo}/pulls",
                json_body={"title": title, "head": head, "base": base, "body": body},
            ).json()
        except ApiError as exc:
            # 422 "A pull request already exists": another job opened it meanwhile.
            existing = self.find_open(head=head, base=base)
            if existing is None:
                raise ConfigError(str(exc)) from None
            return self.open_or_update(head=head, base=base, title=title, body=body)
        return self._pr(doc, True)

    def upsert_comment(self, number: int, marker: str, body: str) -> str:
        """Post a comment, or edit the one carrying the marker; its URL."""
        text = f"{marker}\n{body}"
        for comment in self.http.pages(f"/repos/{self.repo}/issues/{number}/comments", {}):
            if marker in str(comment.get("body", "")):
                doc = self.http.call(
                    "PATCH",
                    f"/repos/{self.repo}/issues/comments/{comment['id']}",
                    json_body={"body": text},
                ).json()
                return str(doc["html_url"])
        doc = self.http.call(
            "POST", f"/repos/{self.repo}/issues/{number}/comments", json_body={"body": text}
        ).json()
        return str(doc["html_url"])

    def changed_files(self, number: int) -> list[str]:
        """The pull request's files (GET /repos/{repo}/pulls/{n}/files, at most 3,000: a change
        that large touches shared files anyway), a renamed file's old path included."""
        paths: list[str] = []
        for doc in self.http.pages(f"/repos/{self.repo}/pulls/{number}/files", {}):
            paths.append(str(doc["filename"]))
            if doc.get("previous_filename"):
                paths.append(str(doc["previous_filename"]))
        return paths


def gitlab_job_artifacts(
    api_url: str, project: str, ref: str, job: str, job_token: str
) -> bytes | None:
    """The artifacts archive (zip) of job ``job`` in the latest successful pipeline of ``ref``,
    read with a CI job token (GET /projects/:id/jobs/artifacts/:ref_name/download?job=NAME);
    None when there is none (GitLab answers 404: never run, or the artifacts expired)."""
    http = _Http(api_url, {"JOB-TOKEN": job_token, "User-Agent": "mlops-gitops"}, "GitLab")
    path = (
        f"/projects/{urllib.parse.quote(project, safe='')}/jobs/artifacts/"
        f"{urllib.parse.quote(ref, safe='')}/download"
    )
    r = http.call("GET", path, params={"job": job}, answers=(404,))
    return None if r.status_code == 404 else r.content


class GitLab:
    """Merge requests on GitLab through its REST API."""

    name = "gitlab"

    def __init__(self, cfg: GitOpsConfig) -> None:
        env = read_settings()
        if env.gitlab_token:
            header = {"PRIVATE-TOKEN": reveal(env.gitlab_token)}
        elif env.ci_job_token:
            header = {"JOB-TOKEN": reveal(env.ci_job_token)}
        else:
            raise ConfigError(
                "the gitlab provider needs GITLAB_TOKEN (or CI_JOB_TOKEN)",
                hint="a project access token with the api scope, as a masked CI/CD variable",
            )
        if not cfg.gitlab.project:
            raise ConfigError(
                "gitlab.project is not set (id or group/name)",
                hint="set it in manifests/gitops.yaml or CI_PROJECT_ID",
            )
        self.project = urllib.parse.quote(str(cfg.gitlab.project), safe="")
        self.http = _Http(cfg.gitlab.api_url, {**header, "User-Agent": "mlops-gitops"}, "GitLab")

    def _mr(self, doc: dict[str, Any], created: bool) -> PullRequest:
        return PullRequest(
            int(doc["iid"]),
            str(doc["web_url"]),
            created,
            str(doc["source_branch"]),
            str(doc["target_branch"]),
        )

    def find_open(self, *, head: str, base: str) -> PullRequest | None:
        """The open merge request from head into base, if there is one."""
        found = self.http.call(
            "GET",
            f"/projects/{self.project}/merge_requests",
            params={"state": "opened", "source_branch": head, "target_branch": base},
        ).json()
        return self._mr(found[0], False) if found else None

    def list_open(self, *, base: str) -> list[PullRequest]:
        """The open merge requests into base."""
        return [
            self._mr(doc, False)
            for doc in self.http.pages(
                f"/projects/{self.project}/merge_requests",
                {"state": "opened", "target_branch": base},
            )
        ]

    def close(self, number: int) -> None:
        """Close a merge request without merging it."""
        self.http.call(
            "PUT",
            f"/projects/{self.project}/merge_requests/{number}",
            json_body={"state_event": "close"},
        )

    def open_or_update(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a merge request, or update the title and description of the open one."""
        existing = self.find_open(head=head, base=base)
        if existing is not None:
            doc = self.http.call(
                "PUT",
                f"/projects/{self.project}/merge_requests/{existing.number}",
                json_body={"title": title, "description": body},
            ).json()
            return self._mr(doc, False)
        try:
            doc = self.http.call(
                "POST",
                f"/projects/{self.project}/merge_requests",
                json_body={
                    "source_branch": head,
                    "target_branch": base,
                    "title": title,
                    "description": body,
                    "remove_source_branch": True,
                },
            ).json()
        except ApiError as exc:
            # 409 "Another open merge request already exists for this source branch".
            if self.find_open(head=head, base=base) is None:
                raise ConfigError(str(exc)) from None
            return self.open_or_update(head=head, base=base, title=title, body=body)
        return self._mr(doc, True)

    def upsert_comment(self, number: int, marker: str, body: str) -> str:
        """Post a note, or edit the one carrying the marker; its URL."""
        text = f"{marker}\n{body}"
        base = f"/projects/{self.project}/merge_requests/{number}/notes"
        for note in self.http.pages(base, {"sort": "asc"}):
            if marker in str(note.get("body", "")):
                self.http.call("PUT", f"{base}/{note['id']}", json_body={"body": text})
                return f"{self.http.api}{base}/{note['id']}"
        doc = self.http.call("POST", base, json_body={"body": text}).json()
        return f"{self.http.api}{base}/{doc['id']}"

    def changed_files(self, number: int) -> list[str]:
        """The merge request's files (GET .../merge_requests/:iid/diffs, GitLab 15.7+), both
        paths of a rename."""
        paths: set[str] = set()
        for doc in self.http.pages(f"/projects/{self.project}/merge_requests/{number}/diffs", {}):
            paths.update(str(doc[k]) for k in ("old_path", "new_path") if doc.get(k))
        return sorted(paths)


class Local:
    """The embedded default: requests are JSON records with a Markdown body, in a folder next to
    the local GitOps repository. ``mlops promote --merge`` plays the reviewer."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.dir = root / ".infra" / "pull-requests"

    def _index(self) -> dict[str, dict[str, Any]]:
        path = self.dir / "index.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the requests folder's lock. The lock is the folder itself (flock on its
        descriptor), so no lock file is left behind."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise InfraError(
                f"cannot keep local requests in {self.dir}: {exc.strerror or exc}",
                hint=f"{self.dir} must be a folder this user can write",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _pr(self, number: str, doc: dict[str, Any], created: bool) -> PullRequest:
        return PullRequest(
            int(number), str(self.dir / f"{number}.md"), created, doc["head"], doc["base"]
        )

    def find_open(self, *, head: str, base: str) -> PullRequest | None:
        """The open request from head into base, if there is one."""
        for number, doc in self._index().items():
            if doc["head"] == head and doc["base"] == base and doc["state"] == "open":
                return self._pr(number, doc, False)
        return None

    def open_prs(self) -> list[tuple[PullRequest, dict[str, Any]]]:
        """Every open request with its stored record, in number order."""
        return [
            (self._pr(n, d, False), d)
            for n, d in sorted(self._index().items(), key=lambda kv: int(kv[0]))
            if d["state"] == "open"
        ]

    def list_open(self, *, base: str) -> list[PullRequest]:
        """The open requests into base."""
        return [pr for pr, _ in self.open_prs() if pr.base == base]

    def close(self, number: int) -> None:
        """Mark a request closed."""
        self.set_state(number, "closed")

    def open_or_update(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a request, or update the open one, under the folder's lock."""
        with self._locked():
            index = self._index()
            found = self.find_open(head=head, base=base)
            number = str(found.number) if found else str(max(map(int, index), default=0) + 1)
            created = found is None
            index[number] = {
                "head": head,
                "base": base,
                "title": title,
                "state": "open",
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            write_text(self.dir / f"{number}.md", f"# {title}\n\n{body}")
            write_json(self.dir / "index.json", index)
            return self._pr(number, index[number], created)

    def set_state(self, number: int, state: str) -> None:
        """Set a request's state (open, closed, merged) under the folder's lock."""
        with self._locked():
            index = self._index()
            index[str(number)]["state"] = state
            write_json(self.dir / "index.json", index)

    def upsert_comment(self, number: int, marker: str, body: str) -> str:
        """Write the request's comment file (one per request); its path."""
        path = self.dir / "comments" / f"{number}.md"
        write_text(path, f"{marker}\n{body}")
        return str(path)

    def changed_files(self, number: int) -> None:
        """A local request is a GitOps branch, not a change to this repository: unknown."""
        return


def provider(cfg: GitOpsConfig, root: Path) -> Provider:
    """The pull-request provider the GitOps config names."""
    if cfg.provider == "github":
        return GitHub(cfg)
    if cfg.provider == "gitlab":
        return GitLab(cfg)
    return Local(root)

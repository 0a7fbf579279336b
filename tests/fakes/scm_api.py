"""A local HTTP server standing in for the GitHub REST v3 and GitLab REST v4 APIs.

It checks what the client sends against the documented API: method and path, the required
headers (GitHub: ``Authorization: Bearer``, ``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version``; GitLab: ``PRIVATE-TOKEN`` or ``JOB-TOKEN``), and the JSON body's
required fields and types. Anything else is answered as the real service would (401, 404,
422/409, 400), and every request is recorded for assertions. ``script`` queues canned answers
(rate limits, 5xx) for the next requests; ``deny`` refuses chosen calls with 403.

References: docs.github.com/en/rest/pulls/pulls (files too), /rest/issues/comments;
docs.gitlab.com/ee/api/merge_requests.html, /api/notes.html.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-token-0123456789"
DEFAULT_FILES = [("pipelines/cli.py", "pipelines/cli.py")]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class State:
    repo: str = "acme/gitops"  # GitHub owner/name
    project: str = "acme/gitops"  # GitLab path (or id "42")
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    # (ref, job) -> the zip GitLab serves as that job's latest artifacts on that ref.
    artifacts: dict[tuple[str, str], bytes] = field(default_factory=dict)
    # Request number -> the files its change holds, as (old path, new path) pairs (equal
    # unless renamed). A request a test did not set changes shared code, so it touches every
    # model (pipelines/core/changes.py).
    files: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    # (method, path) pairs answered 403, as for a token that lacks that permission.
    deny: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _require(body: Any, fields: dict[str, type], optional: dict[str, type]) -> None:
    if not isinstance(body, dict):
        raise ApiError(400, {"message": "Problems parsing JSON"})
    for name, kind in fields.items():
        if not isinstance(body.get(name), kind):
            raise ApiError(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"field": name, "code": "missing_field"}],
                },
            )
    for name, kind in optional.items():
        if name in body and not isinstance(body[name], kind):
            raise ApiError(
                422,
                {"message": "Validation Failed", "errors": [{"field": name, "code": "invalid"}]},
            )


class Handler(BaseHTTPRequestHandler):
    state: State
    kind: str  # "github" | "gitlab"

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        binary = isinstance(body, bytes)
        data = body if binary else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/zip" if binary else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<invalid json>"
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.state.lock:
            self.state.requests.append(Recorded(method, url.path, query, headers, body))
            scripted = self.state.script.pop(0) if self.state.script else None
        if scripted is not None:
            status, extra_headers, canned = scripted
            self._reply(status, canned, extra_headers)
            return
        try:
            self._authorize(headers)
            if (method, url.path) in self.state.deny:
                raise ApiError(403, {"message": "Resource not accessible by integration"})
            if body == "<invalid json>":
                raise ApiError(400, {"message": "Problems parsing JSON"})
            with self.state.lock:
                route = self._github if self.kind == "github" else self._gitlab
                status, out, extra = route(method, url.path, query, body)
        except ApiError as exc:
            self._reply(exc.status, exc.body, exc.headers)
            return
        self._reply(status, out, extra)

    def _authorize(self, h: dict[str, str]) -> None:
        if self.kind == "github":
            if h.get("authorization") != f"Bearer {TOKEN}":
                raise ApiError(401, {"message": "Bad credentials"})
            if h.get("accept") != "application/vnd.github+json":
                raise ApiError(415, {"message": "Unsupported Accept header"})
            if h.get("x-github-api-version") != "2022-11-28":
                raise ApiError(400, {"message": "Invalid API version"})
        elif TOKEN not in (h.get("private-token"), h.get("job-token")):
            raise ApiError(401, {"message": "401 Unauthorized"})

    # Each API is a table of routes: (method, path pattern below the repository or project,
    # action). An action gets the pattern's numeric groups; a request no route takes is a 404.

    def _route(
        self,
        routes: tuple[Route, ...],
        method: str,
        rest: str,
        q: dict[str, str],
        body: Any,
        path: str,
        not_found: dict[str, str],
    ) -> tuple[int, Any, dict[str, str]]:
        for verb, pattern, action in routes:
            m = re.fullmatch(pattern, rest)
            if m and method == verb:
                return action(self, tuple(int(g) for g in m.groups()), q, body, path)
        raise ApiError(404, not_found)

    # --- GitHub REST v3 ------------------------------------------------------------------

    def _github(
        self, method: str, path: str, q: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        base = f"/repos/{self.state.repo}"
        if not path.startswith(base + "/"):
            raise ApiError(404, {"message": "Not Found"})
        rest = path[len(base) :]
        return self._route(GITHUB_ROUTES, method, rest, q, body, path, {"message": "Not Found"})

    def _owner(self) -> str:
        return self.state.repo.split("/")[0]

    def _pr_json(self, n: int) -> dict[str, Any]:
        s, owner = self.state, self._owner()
        p = s.pulls[n]
        return {
            "number": n,
            "state": p["state"],
            "title": p["title"],
            "body": p["body"],
            "html_url": f"https://github.example/{s.repo}/pull/{n}",
            "head": {"ref": p["head"], "label": f"{owner}:{p['head']}"},
            "base": {"ref": p["base"]},
        }

    def _gh_list_pulls(
        self, _ids: tuple[int, ...], q: dict[str, str], _body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        owner = self._owner()
        if q.get("state", "open") not in ("open", "closed", "all"):
            raise ApiError(422, {"message": "Validation Failed"})
        head = q.get("head")
        if head is not None and not re.match(r"^[^:]+:.+$", head):
            raise ApiError(422, {"message": "head must be user:ref-name"})
        found = [
            self._pr_json(n)
            for n, p in sorted(self.state.pulls.items())
            if (head is None or f"{owner}:{p['head']}" == head)
            and ("base" not in q or p["base"] == q["base"])
            and (q.get("state", "open") in ("all", p["state"]))
        ]
        return self._page(found, q, path)

    def _gh_create_pull(
        self, _ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        s = self.state
        _require(
            body,
            {"title": str, "head": str, "base": str},
            {"body": str, "draft": bool, "maintainer_can_modify": bool},
        )
        if any(
            p["head"] == body["head"] and p["base"] == body["base"] and p["state"] == "open"
            for p in s.pulls.values()
        ):
            raise ApiError(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": "A pull request already exists for "
                            f"{self._owner()}:{body['head']}.",
                        }
                    ],
                },
            )
        n = len(s.pulls) + 1
        s.pulls[n] = {
            "title": body["title"],
            "body": body.get("body", ""),
            "head": body["head"],
            "base": body["base"],
            "state": "open",
        }
        return 201, self._pr_json(n), {}

    def _gh_update_pull(
        self, ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        s, (n,) = self.state, ids
        if n not in s.pulls:
            raise ApiError(404, {"message": "Not Found"})
        _require(body, {}, {"title": str, "body": str, "state": str, "base": str})
        if body.get("state", "open") not in ("open", "closed"):
            raise ApiError(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"field": "state", "code": "invalid"}],
                },
            )
        s.pulls[n].update({k: body[k] for k in ("title", "body", "state", "base") if k in body})
        return 200, self._pr_json(n), {}

    def _gh_list_comments(
        self, ids: tuple[int, ...], q: dict[str, str], _body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        (n,) = ids
        items = [
            {"id": cid, "body": c["body"], "html_url": f"https://github.example/c/{cid}"}
            for cid, c in sorted(self.state.comments.items())
            if c["on"] == n
        ]
        return self._page(items, q, path)

    def _gh_list_files(
        self, ids: tuple[int, ...], q: dict[str, str], _body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        # GET /repos/{owner}/{repo}/pulls/{pull_number}/files: `filename`, and for a rename
        # `status: renamed` with `previous_filename` (docs.github.com/en/rest/pulls/pulls).
        (n,) = ids
        items = []
        for old, new in self.state.files.get(n, DEFAULT_FILES):
            item: dict[str, Any] = {"sha": "0" * 40, "filename": new, "status": "modified"}
            if old != new:
                item.update(status="renamed", previous_filename=old)
            items.append(item)
        return self._page(items, q, path)

    def _gh_create_comment(
        self, ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        _require(body, {"body": str}, {})
        cid = self.state.new_id()
        self.state.comments[cid] = {"on": ids[0], "body": body["body"]}
        return (
            201,
            {"id": cid, "body": body["body"], "html_url": f"https://github.example/c/{cid}"},
            {},
        )

    def _gh_update_comment(
        self, ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        (cid,) = ids
        if cid not in self.state.comments:
            raise ApiError(404, {"message": "Not Found"})
        _require(body, {"body": str}, {})
        self.state.comments[cid]["body"] = body["body"]
        return (
            200,
            {"id": cid, "body": body["body"], "html_url": f"https://github.example/c/{cid}"},
            {},
        )

    def _page(
        self, items: list[Any], q: dict[str, str], path: str
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(q.get("per_page", 30)), 100)
        page = int(q.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            host = self.headers.get("Host")
            nxt = urllib.parse.urlencode({**q, "page": page + 1})
            headers["Link"] = f'<http://{host}{path}?{nxt}>; rel="next"'
        return 200, chunk, headers

    # --- GitLab REST v4 ------------------------------------------------------------------

    def _gitlab(
        self, method: str, path: str, q: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        # The project id is either numeric or the URL-encoded path (group%2Fname).
        m = re.fullmatch(r"/api/v4/projects/([^/]+)(/.*)", self.path.split("?")[0])
        if not m or urllib.parse.unquote(m.group(1)) != self.state.project or "/" in m.group(1):
            raise ApiError(404, {"message": "404 Project Not Found"})
        not_found = {"message": "404 Not Found"}
        return self._route(GITLAB_ROUTES, method, m.group(2), q, body, path, not_found)

    def _gl_job_artifacts(
        self, _ids: tuple[int, ...], q: dict[str, str], _body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        # GET /projects/:id/jobs/artifacts/:ref_name/download?job=NAME (job is required).
        if "job" not in q:
            raise ApiError(400, {"error": "job is missing"})
        ref = urllib.parse.unquote(path.rsplit("/jobs/artifacts/", 1)[1].removesuffix("/download"))
        data = self.state.artifacts.get((ref, q["job"]))
        if data is None:
            raise ApiError(404, {"message": "404 Not found"})
        return 200, data, {}

    def _mr_json(self, iid: int) -> dict[str, Any]:
        s = self.state
        p = s.pulls[iid]
        return {
            "iid": iid,
            "id": iid + 5000,
            "state": p["state"],
            "title": p["title"],
            "description": p["body"],
            "source_branch": p["head"],
            "target_branch": p["base"],
            "web_url": f"https://gitlab.example/{s.project}/-/merge_requests/{iid}",
        }

    def _gl_list_mrs(
        self, _ids: tuple[int, ...], q: dict[str, str], _body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        if q.get("state", "all") not in ("opened", "closed", "locked", "merged", "all"):
            raise ApiError(400, {"error": "state does not have a valid value"})
        found = [
            self._mr_json(i)
            for i, p in sorted(self.state.pulls.items())
            if q.get("state", "all") in ("all", p["state"])
            and q.get("source_branch", p["head"]) == p["head"]
            and q.get("target_branch", p["base"]) == p["base"]
        ]
        return self._page(found, q, path)

    def _gl_create_mr(
        self, _ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        s = self.state
        _require(
            body,
            {"source_branch": str, "target_branch": str, "title": str},
            {"description": str, "remove_source_branch": bool},
        )
        for iid, p in s.pulls.items():
            if p["head"] == body["source_branch"] and p["state"] == "opened":
                raise ApiError(
                    409,
                    {
                        "message": [
                            "Another open merge request already exists for this "
                            f"source branch: !{iid}"
                        ]
                    },
                )
        iid = len(s.pulls) + 1
        s.pulls[iid] = {
            "title": body["title"],
            "body": body.get("description", ""),
            "head": body["source_branch"],
            "base": body["target_branch"],
            "state": "opened",
        }
        return 201, self._mr_json(iid), {}

    def _gl_update_mr(
        self, ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        s, (iid,) = self.state, ids
        if iid not in s.pulls:
            raise ApiError(404, {"message": "404 Not found"})
        _require(body, {}, {"title": str, "description": str, "state_event": str})
        if "title" in body:
            s.pulls[iid]["title"] = body["title"]
        if "description" in body:
            s.pulls[iid]["body"] = body["description"]
        if "state_event" in body:
            if body["state_event"] not in ("close", "reopen"):
                raise ApiError(400, {"error": "state_event does not have a valid value"})
            s.pulls[iid]["state"] = "closed" if body["state_event"] == "close" else "opened"
        return 200, self._mr_json(iid), {}

    def _gl_list_notes(
        self, ids: tuple[int, ...], q: dict[str, str], _body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        (iid,) = ids
        items = [
            {"id": nid, "body": c["body"]}
            for nid, c in sorted(self.state.comments.items())
            if c["on"] == iid
        ]
        return self._page(items, q, path)

    def _gl_list_diffs(
        self, ids: tuple[int, ...], q: dict[str, str], _body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        # GET /projects/:id/merge_requests/:merge_request_iid/diffs (GitLab 15.7+; paginated):
        # `old_path`, `new_path` and the flags (docs.gitlab.com/ee/api/merge_requests.html).
        (iid,) = ids
        items = [
            {
                "old_path": old,
                "new_path": new,
                "a_mode": "100644",
                "b_mode": "100644",
                "new_file": False,
                "renamed_file": old != new,
                "deleted_file": False,
                "diff": "",
            }
            for old, new in self.state.files.get(iid, DEFAULT_FILES)
        ]
        return self._page(items, q, path)

    def _gl_create_note(
        self, ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        _require(body, {"body": str}, {})
        nid = self.state.new_id()
        self.state.comments[nid] = {"on": ids[0], "body": body["body"]}
        return 201, {"id": nid, "body": body["body"]}, {}

    def _gl_update_note(
        self, ids: tuple[int, ...], _q: dict[str, str], body: Any, _path: str
    ) -> tuple[int, Any, dict[str, str]]:
        nid = ids[1]  # /merge_requests/<iid>/notes/<nid>: the note's id alone names it
        if nid not in self.state.comments:
            raise ApiError(404, {"message": "404 Not found"})
        _require(body, {"body": str}, {})
        self.state.comments[nid]["body"] = body["body"]
        return 200, {"id": nid, "body": body["body"]}, {}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")


# An action: (handler, the route pattern's numeric groups, query, JSON body, request path).
Route = tuple[
    str,
    str,
    Callable[[Handler, tuple[int, ...], dict[str, str], Any, str], tuple[int, Any, dict[str, str]]],
]
GITHUB_ROUTES: tuple[Route, ...] = (
    ("GET", r"/pulls", Handler._gh_list_pulls),
    ("POST", r"/pulls", Handler._gh_create_pull),
    ("PATCH", r"/pulls/(\d+)", Handler._gh_update_pull),
    ("GET", r"/pulls/(\d+)/files", Handler._gh_list_files),
    ("GET", r"/issues/(\d+)/comments", Handler._gh_list_comments),
    ("POST", r"/issues/(\d+)/comments", Handler._gh_create_comment),
    ("PATCH", r"/issues/comments/(\d+)", Handler._gh_update_comment),
)
GITLAB_ROUTES: tuple[Route, ...] = (
    ("GET", r"/merge_requests", Handler._gl_list_mrs),
    ("POST", r"/merge_requests", Handler._gl_create_mr),
    ("PUT", r"/merge_requests/(\d+)", Handler._gl_update_mr),
    ("GET", r"/merge_requests/(\d+)/notes", Handler._gl_list_notes),
    ("POST", r"/merge_requests/(\d+)/notes", Handler._gl_create_note),
    ("PUT", r"/merge_requests/(\d+)/notes/(\d+)", Handler._gl_update_note),
    ("GET", r"/merge_requests/(\d+)/diffs", Handler._gl_list_diffs),
    ("GET", r"/jobs/artifacts/[^/]+/download", Handler._gl_job_artifacts),
)


@dataclass
class FakeApi:
    url: str
    state: State


def serve(kind: str) -> Iterator[FakeApi]:
    state = State()
    handler = type(f"{kind.title()}Handler", (Handler,), {"state": state, "kind": kind})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield FakeApi(base if kind == "github" else f"{base}/api/v4", state)
    finally:
        server.shutdown()
        server.server_close()

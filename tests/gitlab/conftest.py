"""gitlab-ci-local for the GitLab template tests: installed on first use (Node 22 from npm
into ``.tools/node``, gitignored), never skipped — a failed install fails the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services import machine_lock

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("MLCD_NODE_TOOLS", REPO / ".tools" / "node"))
GITLAB_CI_LOCAL = "gitlab-ci-local@4.75.1"
NODE = "node@22"


def _works(bin_dir: Path) -> bool:
    exe = bin_dir / "gitlab-ci-local"
    if not exe.exists():
        return False
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        out = subprocess.run([str(exe), "--version"], env=env, capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


@pytest.fixture(scope="session")
def gitlab_ci_local_bin() -> Path:
    """The folder holding ``node`` (22) and ``gitlab-ci-local``; installs them when absent."""
    with machine_lock("gitlab-ci-local"):  # pytest-xdist workers install it once
        return _install()


def _install() -> Path:
    bin_dir = TOOLS / "node_modules" / ".bin"
    if _works(bin_dir):
        return bin_dir
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: gitlab-ci-local needs it (apt-get install npm)")
    if shutil.which("rsync") is None:
        pytest.fail("rsync is not installed: gitlab-ci-local --shell-isolation needs it "
                    "(apt-get install rsync)")
    TOOLS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS),
                           NODE, GITLAB_CI_LOCAL], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not _works(bin_dir):
        pytest.fail(f"installing {NODE} and {GITLAB_CI_LOCAL} into {TOOLS} failed "
                    f"(exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return bin_dir

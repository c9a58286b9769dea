"""Security of what we ship to CI, checked on the files themselves: every composite action,
reusable, starter and scaffolded workflow, and the GitLab templates.

* no ``${{ ... }}`` expression inside a ``run:`` script (inputs reach scripts through
  ``env:``; an expression pasted into a script is script injection from a branch name or
  a PR title); on GitLab no ``$[[ inputs.* ]]`` inside ``script``/``before_script`` (they
  go through ``variables:``);
* least ``permissions:``: every workflow starts from ``{}`` (or read-only) at the top,
  every job says what it needs, never ``write-all``; write scopes only the ones a job of
  ours needs, ``contents: write`` only where retraining is dispatched;
* third-party actions pinned by a full commit SHA (our own ``mlcd-actions/*`` by the
  release tag, as ``.github/zizmor.yml`` states).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = sorted((ROOT / "action-templates").rglob("action.yml"))
WORKFLOWS = sorted([*(ROOT / ".github" / "workflows").glob("*.yml"),
                    *[p for p in (ROOT / "action-templates" / "workflows").glob("*.yml")
                      if not p.name.startswith("gitlab")],
                    *(ROOT / "mlcd_actions" / "scaffold" / "github").glob("*.yml")])
GITLAB = sorted([*(ROOT / "action-templates" / "gitlab").rglob("*.yml"),
                 ROOT / "action-templates" / "workflows" / "gitlab-ci.yml",
                 *(ROOT / "mlcd_actions" / "scaffold" / "gitlab").glob("*.yml")])
EXPRESSION = re.compile(r"\$\{\{")
GITLAB_INPUT = re.compile(r"\$\[\[\s*inputs\.")
SHA = re.compile(r"^[0-9a-f]{40}$")
WRITE_SCOPES = {"packages", "pull-requests", "issues", "contents", "id-token", "actions",
                "statuses", "checks", "deployments"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _load(path: Path):
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    return docs[-1] if docs else {}


def _steps(doc: dict) -> list[tuple[str, dict]]:
    out = []
    if "runs" in doc:  # a composite action
        out += [("runs", s) for s in doc["runs"].get("steps") or []]
    for name, job in (doc.get("jobs") or {}).items():
        out += [(name, s) for s in job.get("steps") or []]
    return out


def test_the_files_are_found():
    assert len(ACTIONS) >= 18 and len(WORKFLOWS) >= 8 and len(GITLAB) >= 10


@pytest.mark.parametrize("path", ACTIONS + WORKFLOWS, ids=_rel)
def test_no_expression_inside_a_run_script(path):
    bad = [f"{where}: {step.get('name') or step['run'][:60]!r}"
           for where, step in _steps(_load(path))
           if "run" in step and EXPRESSION.search(str(step["run"]))]
    assert not bad, f"{_rel(path)}: ${{{{ }}}} inside run: (pass it through env:): {bad}"


@pytest.mark.parametrize("path", GITLAB, ids=_rel)
def test_no_gitlab_input_inside_a_script(path):
    bad = []
    text = path.read_text(encoding="utf-8")
    for doc in (d for d in yaml.safe_load_all(text) if isinstance(d, dict)):
        for job, body in doc.items():
            if not isinstance(body, dict):
                continue
            for key in ("script", "before_script", "after_script"):
                lines = body.get(key) or []
                lines = [lines] if isinstance(lines, str) else lines
                bad += [f"{job}.{key}: {line}" for line in lines
                        if GITLAB_INPUT.search(str(line))]
    assert not bad, f"{_rel(path)}: $[[ inputs ]] inside a script (use variables:): {bad}"


def _uses(doc: dict) -> list[str]:
    refs = [s["uses"] for _, s in _steps(doc) if "uses" in s]
    refs += [job["uses"] for job in (doc.get("jobs") or {}).values() if "uses" in job]
    return refs


@pytest.mark.parametrize("path", ACTIONS + WORKFLOWS, ids=_rel)
def test_third_party_actions_are_pinned_by_sha(path):
    bad = []
    for ref in _uses(_load(path)):
        if ref.startswith(("./", "docker://")):
            continue
        name, _, version = ref.partition("@")
        if name.startswith("mlcd-actions/"):
            assert version, f"{ref}: our own action without a ref"
            continue
        if not SHA.match(version):
            bad.append(ref)
    assert not bad, f"{_rel(path)}: third-party actions not pinned by commit SHA: {bad}"


def _writes(perms) -> set[str]:
    if perms in (None, {}):
        return set()
    assert isinstance(perms, dict), f"permissions: {perms!r} (use a mapping, never write-all)"
    return {scope for scope, level in perms.items() if level == "write"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=_rel)
def test_least_permissions(path):
    doc = _load(path)
    assert "permissions" in doc, f"{_rel(path)}: no top-level permissions: (start from {{}})"
    top = doc["permissions"]
    assert top not in ("write-all", "read-all") and not _writes(top), \
        f"{_rel(path)}: top-level permissions {top!r} (grant writes per job)"
    for name, job in (doc.get("jobs") or {}).items():
        assert "permissions" in job, f"{_rel(path)}: job {name} does not declare permissions:"
        writes = _writes(job["permissions"])
        assert writes <= WRITE_SCOPES, (name, writes)
        if "contents" in writes:
            assert "monitor" in path.name or "monitor" in name, \
                f"{_rel(path)}: job {name} has contents: write (only retraining dispatch)"

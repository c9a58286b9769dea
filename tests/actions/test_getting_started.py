"""docs/getting-started.md, section 7, run exactly as written: a new git repository with
scikit-learn's diabetes table, `mlcd init --ci github`, the CD workflow on main under act
(through action-templates/local/act.py), then a pull request checked without a server and
compared with the main snapshot the CD run left in the (local) Actions cache.

This one flow is the act coverage of the CD workflow and of a passing pull request (the
other tests in this folder cover failures, monitoring and the full starter)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.actions.conftest import ROOT, ActRun
from tests.doc_commands import run as run_doc

pytestmark = [pytest.mark.slow, pytest.mark.service,
              pytest.mark.timeout(2700)]  # two workflow runs under act
DOC = ROOT / "docs" / "getting-started.md"


def test_getting_started_new_repo_to_green_pr_under_act(act_env, mlflow_server, tmp_path):
    home = tmp_path / "home"  # the autouse isolation fixture made it; HOME points there
    act_home = tmp_path / "act-home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "MLCD_", "MLFLOW_", "CI_")) and k != "CI"}
    env.update(HOME=str(home), MLCD_ACTIONS=str(ROOT), MLCD_ACT_HOME=str(act_home),
               MLFLOW_TRACKING_URI=mlflow_server, ACT=act_env.act, GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.com",
               GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.com",
               # the runner-level settings of the setup action (documented; a warm cache)
               MLCD_SETUP_PYTHON=act_env.python, MLCD_SETUP_WHEELHOUSE=str(act_env.wheelhouse),
               MLCD_SETUP_CACHE_DIR=str(act_env.cache_dir),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    proc = run_doc(DOC, "github-quickstart", tmp_path, env, timeout=2400)
    out = proc.stdout + proc.stderr
    (tmp_path / "quickstart.log").write_text(out, encoding="utf-8")
    run = ActRun(proc.returncode, out, 0.0, tmp_path)
    why = "\n".join(ln for ln in out.splitlines()
                    if re.search(r"mlcd [a-z-]+: failed|Job failed|::error|mlcd-act:", ln))
    assert proc.returncode == 0, f"{why}\n{run!r}"
    assert out.count("mlcd-act: act exited 0") == 2, run
    cd_part, pr_part = out.split("mlcd-act: act exited 0")[:2]
    cd, pr = ActRun(0, cd_part, 0, tmp_path), ActRun(0, pr_part, 0, tmp_path)

    # --- CD on main: every job passed; no image for the local target (mlcd.yaml)
    results = cd.job_results()
    assert results and set(results.values()) == {"succeeded"}, results
    jobs = " ".join(results)
    for name in ("data", "train, evaluate, register", "deploy staging", "deploy production"):
        assert name in jobs, (name, results)
    assert "app image" not in jobs, results
    assert re.search(r"::set-output:: data-version=[0-9a-f]{12}", cd.output), cd
    assert any((home / "dvc-store" / "diabetes").rglob("*")), "nothing pushed to DVC"
    assert re.search(r"::set-output:: model-version=1\b", cd.output), cd
    # staging's smoke test passed before production started; each `mlcd serve` stopped
    staging_smoke = _first(cd, r"mlcd smoke-test: passed", "deploy staging")
    assert _first(cd, r"⭐ Run", "deploy production") > staging_smoke
    for environment in ("staging", "production"):
        _first(cd, rf"stopped the local deployment of {environment}", f"deploy {environment}")
    # check-fairness: `sex` is a sensitive feature of this table; register ran after it
    assert re.search(r"mlcd register: passed", cd.output), cd

    # --- the pull request: green, compared with main with no server
    results = pr.job_results()
    assert results and set(results.values()) == {"succeeded"}, results
    for stage in ("ingest", "validate", "prepare", "check-data", "train", "evaluate",
                  "check-fairness", "report"):
        assert re.search(rf"mlcd {stage}: (passed|skipped)", pr.output), (stage, pr)
    assert re.search(r"model-uri=runs:/[0-9a-f]{32}/model", pr.output), pr
    assert re.search(r"cache restored from key: mlcd-main-\.-[0-9a-f]{40}", pr.output), pr
    comment = (next((act_home / "repos").glob("diabetes-*")) / "comments" / "pr-1.md"
               ).read_text(encoding="utf-8")
    assert "mlcd report" in comment and comment.strip() in out
    assert "metrics vs main" in comment.lower(), comment
    assert "r2" in comment and "no model on main yet" not in comment, comment
    requests = [json.loads(line) for line in (next((act_home / "repos").glob("diabetes-*"))
                                              / "api-requests.jsonl").read_text().splitlines()]
    assert any(r["method"] == "POST" and r["path"].endswith("/issues/1/comments")
               for r in requests), requests


def _first(run: ActRun, pattern: str, job_part: str) -> int:
    for i, line in enumerate(run.output.splitlines()):
        if job_part in line.split("]")[0] and re.search(pattern, line):
            return i
    raise AssertionError(f"{pattern!r} not found in job {job_part!r}:\n{run!r}")

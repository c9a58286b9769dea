"""mlcd report through the CLI: sticky comments on the fake GitHub/GitLab, caps, failures."""

from __future__ import annotations

import json
from pathlib import Path

from mlcd_actions.core.reporting import write
from mlcd_actions.core.results import Finding, StageResult
from tests.fake_forge import COMMENT_CAP, TOKEN, forge  # noqa: F401
from tests.stages.test_report import write_reports

REPORTS = Path(".mlcd/reports")


def gh_env(forge, tmp_path, **extra):  # noqa: F811
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 17}}))
    return forge.github_env(GITHUB_EVENT_PATH=str(event), GITHUB_RUN_ID="99",
                            GITHUB_SERVER_URL="https://github.example", **extra)


def test_comment_created_then_updated(mlcd, forge, tmp_path):  # noqa: F811
    write_reports(REPORTS)
    env = gh_env(forge, tmp_path)
    r1 = mlcd("report", "--comment", env=env)
    assert r1.exit_code == 0, r1
    write(StageResult("monitor", outputs={"drift": False, "retrain": False}), REPORTS)
    r2 = mlcd("report", "--comment", env=env)
    assert r2.exit_code == 0, r2
    assert "comment created" in r1.verdict and "comment updated" in r2.verdict
    assert len(forge.state.comments) == 1
    body = next(iter(forge.state.comments.values()))["body"]
    assert body.startswith("<!-- mlcd-report -->") and "`monitor`" in body
    assert "https://github.example/acme/credit/actions/runs/99" in body
    posts = [q for q in forge.state.requests if q.method == "POST"]
    patches = [q for q in forge.state.requests if q.method == "PATCH"]
    assert [q.path for q in posts] == ["/repos/acme/credit/issues/17/comments"]
    assert patches[0].path.startswith("/repos/acme/credit/issues/comments/")
    assert all(q.headers["authorization"] == f"Bearer {TOKEN}" for q in forge.state.requests)
    assert TOKEN not in r1.output


def test_too_large_report_is_folded_under_the_cap(mlcd, forge, tmp_path):  # noqa: F811
    write_reports(REPORTS, findings=4000, big=True)
    r = mlcd("report", "--comment", env=gh_env(forge, tmp_path))
    assert r.exit_code == 0, r
    body = next(iter(forge.state.comments.values()))["body"]
    assert len(body) <= COMMENT_CAP and "left out to fit" in body
    assert "actions/runs/99" in body
    assert len((REPORTS / "summary.md").read_text()) > COMMENT_CAP


def test_gitlab_merge_request_note(mlcd, forge):  # noqa: F811
    write_reports(REPORTS)
    env = forge.gitlab_env(CI_MERGE_REQUEST_IID="8", CI_JOB_URL="https://gl.example/job/5")
    assert mlcd("report", "--comment", env=env).exit_code == 0
    assert mlcd("report", "--comment", env=env).exit_code == 0
    assert len(forge.state.notes) == 1
    note = next(iter(forge.state.notes.values()))
    assert note["mr"] == 8 and "https://gl.example/job/5" in note["body"]
    assert [q.method for q in forge.state.writes()] == ["POST", "PUT"]


def test_api_500_exits_3(mlcd, forge, tmp_path):  # noqa: F811
    write_reports(REPORTS)
    forge.state.fail_status = 500
    r = mlcd("report", "--comment", env=gh_env(forge, tmp_path))
    assert r.exit_code == 3, r
    assert "GitHub API GET /repos/acme/credit/issues/17/comments failed: HTTP 500" in r.verdict


def test_overall_output_and_fail_on_failed_stage(mlcd, tmp_path):
    write_reports(REPORTS)
    out = tmp_path / "out"
    r = mlcd("report", env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)})
    assert r.exit_code == 0, r
    assert "overall=failed" in out.read_text()
    r = mlcd("report", "--fail-on-failed-stage")
    assert r.exit_code == 1, r
    assert r.verdict.startswith("mlcd report: failed — 3 stage report(s), overall failed")


def test_comment_outside_a_pull_request_warns(mlcd, forge):  # noqa: F811
    write(StageResult("validate", findings=[Finding("ok", "notice")]), REPORTS)
    r = mlcd("report", "--comment", env=forge.github_env())
    assert r.exit_code == 0, r
    assert "not in a pull/merge request" in r.output and forge.state.requests == []


def test_empty_report_dir_exits_2(mlcd):
    r = mlcd("report")
    assert r.exit_code == 2, r
    assert "no such report directory" in r.verdict

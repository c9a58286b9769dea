"""action-templates/local/act.py without running act: what it maps, the API recorder, and
its one-line errors (the workflow tests run it for real)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from tests.actions.conftest import ACT_SCRIPT, ROOT, _act_script, git_repo


def test_maps_our_workflows_and_every_pinned_action_to_a_stand_in(tmp_path):
    act = _act_script()
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text(
        "jobs:\n  a:\n    uses: acme/mlcd-actions/.github/workflows/pr.yml@v1.2.0\n")
    mapping, missing = act.local_repositories(repo, ROOT)
    assert f"mlcd-actions/mlcd-actions@v1={ROOT}" in mapping
    assert f"acme/mlcd-actions@v1.2.0={ROOT}" in mapping  # a mirror named by mlcd init --repo
    stubs = {m.split("@")[0]: m.split("=", 1)[1] for m in mapping if m.startswith("actions/")}
    assert set(stubs) == {"actions/cache", "actions/upload-artifact",
                          "actions/download-artifact", "actions/setup-python"}, stubs
    assert all((ACT_SCRIPT.parent / "actions").as_posix() in v for v in stubs.values())
    assert missing == []


def test_api_recorder_keeps_one_sticky_comment_per_pull_request(tmp_path):
    act = _act_script()
    server, url = act.serve_recorder(act.Recorder(tmp_path))
    try:
        def call(method, path, body=None, token=act.TOKEN):
            req = urllib.request.Request(url + path, method=method,
                                         data=json.dumps(body).encode() if body else None,
                                         headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as exc:
                return exc.code, None

        assert call("GET", "/repos/o/r/issues/1/comments", token="wrong")[0] == 401
        status, made = call("POST", "/repos/o/r/issues/1/comments", {"body": "first"})
        assert status == 201
        assert call("PATCH", f"/repos/o/r/issues/comments/{made['id']}", {"body": "second"})[0] \
            == 200
        assert call("GET", "/repos/o/r/issues/1/comments?per_page=100&page=2")[1] == []
        assert (tmp_path / "comments" / "pr-1.md").read_text() == "second"
        assert call("POST", "/repos/o/r/dispatches", {"event_type": "x"})[0] == 204
        log = (tmp_path / "api-requests.jsonl").read_text().splitlines()
        assert len(log) == 4 and json.loads(log[-1])["path"] == "/repos/o/r/dispatches"
    finally:
        server.shutdown()
        server.server_close()


def test_bad_usage_is_one_line_and_exit_2(tmp_path):
    def run(*args, cwd):
        return subprocess.run([sys.executable, str(ACT_SCRIPT), *args], cwd=cwd,
                              capture_output=True, text=True, timeout=60)

    r = run("push", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "has no .github/workflows" in r.stderr
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "x.yml").write_text("on: push\n")
    r = run("push", cwd=tmp_path)
    assert r.returncode == 2 and "not a git repository with a commit" in r.stderr, r.stderr
    git_repo(tmp_path)
    r = run("push", "--actions", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "is not an mlcd-actions checkout" in r.stderr, r.stderr

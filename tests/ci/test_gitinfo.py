"""gitinfo: CI variables on GitHub and GitLab, local git, and no git at all."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mlcd_actions.ci import gitinfo

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
           "GIT_CONFIG_NOSYSTEM": "1"}
SHA = "0123456789abcdef0123456789abcdef01234567"


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                         env={**os.environ, **GIT_ENV})
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a\n")
    git(root, "add", "a.txt")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_not_a_repo_gives_none(tmp_path):
    ctx = gitinfo.context(tmp_path, env={})
    assert ctx == gitinfo.GitContext()
    assert gitinfo.git_sha(tmp_path) is None
    assert gitinfo.commits_since(None, cwd=tmp_path) is None
    assert gitinfo.latest_release_tag(cwd=tmp_path) is None


def test_missing_git_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert gitinfo.git_sha(tmp_path) is None
    assert gitinfo.context(tmp_path, env={}).sha is None


def test_local_branch_and_sha(repo):
    ctx = gitinfo.context(repo, env={})
    sha = git(repo, "rev-parse", "HEAD")
    assert ctx.sha == sha == gitinfo.git_sha(repo)
    assert ctx.short_sha == sha[:7]
    assert ctx.branch == "main"
    assert ctx.tag is None and not ctx.is_pull_request and ctx.platform is None
    assert ctx.run_number is None
    assert ctx.is_default_branch


def test_local_tags_and_counts(repo):
    git(repo, "tag", "v0.9.0")
    git(repo, "tag", "v1.0.0")
    git(repo, "tag", "not-a-release")
    assert gitinfo.context(repo, env={}).tag == "v1.0.0"
    assert gitinfo.tags_at("HEAD", repo)[:2] == ["v1.0.0", "v0.9.0"]
    (repo / "b.txt").write_text("b\n")
    git(repo, "add", "b.txt")
    git(repo, "commit", "-q", "-m", "second")
    git(repo, "commit", "-q", "--allow-empty", "-m", "third")
    assert gitinfo.context(repo, env={}).tag is None
    assert gitinfo.latest_release_tag("HEAD", repo) == "v1.0.0"
    assert gitinfo.commits_since("v1.0.0", cwd=repo) == 2
    assert gitinfo.commits_since(None, cwd=repo) == 3


def test_local_detached_head(repo):
    git(repo, "checkout", "-q", "--detach")
    ctx = gitinfo.context(repo, env={})
    assert ctx.branch is None and ctx.sha


def test_local_default_branch_from_origin(repo, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", "-b", "feature")
    ctx = gitinfo.context(clone, env={})
    assert ctx.default_branch == "main" and ctx.branch == "feature"
    assert not ctx.is_default_branch


def test_github_pull_request(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 42, "pull_request": {
        "number": 42, "head": {"ref": "feature/x", "sha": "f" * 40}},
        "repository": {"default_branch": "trunk"}}))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA, "GITHUB_REF": "refs/pull/42/merge",
           "GITHUB_REF_NAME": "42/merge", "GITHUB_EVENT_NAME": "pull_request",
           "GITHUB_HEAD_REF": "feature/x", "GITHUB_BASE_REF": "trunk",
           "GITHUB_RUN_NUMBER": "17", "GITHUB_EVENT_PATH": str(event)}
    ctx = gitinfo.context(tmp_path, env=env)
    assert ctx.platform == "github" and ctx.is_pull_request and ctx.pr_number == 42
    assert ctx.sha == SHA and ctx.short_sha == SHA[:7]
    assert ctx.branch == "feature/x" and ctx.tag is None and ctx.base_branch == "trunk"
    assert ctx.default_branch == "trunk" and ctx.run_number == 17
    assert ctx.head_sha == "f" * 40
    assert not ctx.is_default_branch


def test_github_pull_request_target_number_from_payload(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"ref": "fix"}}}))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA, "GITHUB_REF": "refs/heads/main",
           "GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_EVENT_PATH": str(event)}
    ctx = gitinfo.context(tmp_path, env=env)
    assert ctx.is_pull_request and ctx.pr_number == 7 and ctx.branch == "fix"


def test_github_push_main_and_tag(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"default_branch": "main"}}))
    base = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA, "GITHUB_EVENT_NAME": "push",
            "GITHUB_RUN_NUMBER": "5", "GITHUB_EVENT_PATH": str(event)}
    ctx = gitinfo.context(tmp_path, env={**base, "GITHUB_REF": "refs/heads/main",
                                         "GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch"})
    assert ctx.branch == "main" and ctx.tag is None and not ctx.is_pull_request
    assert ctx.default_branch == "main" and ctx.is_default_branch and ctx.pr_number is None
    ctx = gitinfo.context(tmp_path, env={**base, "GITHUB_REF": "refs/tags/v1.2.3",
                                         "GITHUB_REF_NAME": "v1.2.3", "GITHUB_REF_TYPE": "tag"})
    assert ctx.tag == "v1.2.3" and ctx.branch is None and not ctx.is_default_branch


def test_github_bad_event_file_is_ignored(tmp_path):
    env = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA, "GITHUB_REF": "refs/heads/dev",
           "GITHUB_EVENT_PATH": str(tmp_path / "missing.json"), "GITHUB_RUN_NUMBER": "x"}
    ctx = gitinfo.context(tmp_path, env=env)
    assert ctx.branch == "dev" and ctx.default_branch is None and ctx.run_number is None


def test_gitlab_merge_request_branch_and_tag(tmp_path):
    base = {"GITLAB_CI": "true", "CI_COMMIT_SHA": SHA, "CI_DEFAULT_BRANCH": "main",
            "CI_PIPELINE_IID": "88"}
    mr = gitinfo.context(tmp_path, env={**base, "CI_MERGE_REQUEST_IID": "3",
                                        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feat",
                                        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"})
    assert mr.platform == "gitlab" and mr.is_pull_request and mr.pr_number == 3
    assert mr.branch == "feat" and mr.base_branch == "main" and mr.run_number == 88
    push = gitinfo.context(tmp_path, env={**base, "CI_COMMIT_BRANCH": "main"})
    assert push.branch == "main" and push.is_default_branch and not push.is_pull_request
    tag = gitinfo.context(tmp_path, env={**base, "CI_COMMIT_TAG": "2.0.0"})
    assert tag.tag == "2.0.0" and tag.branch is None and tag.sha == SHA


def test_ci_without_sha_falls_back_to_git(repo):
    ctx = gitinfo.context(repo, env={"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "main"})
    assert ctx.platform == "gitlab" and ctx.sha == git(repo, "rev-parse", "HEAD")


def test_default_env_is_os_environ(repo, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_SHA", SHA)
    monkeypatch.setenv("GITHUB_REF", "refs/heads/x")
    ctx = gitinfo.context(repo)
    assert ctx.sha == SHA and ctx.branch == "x"

"""The GitHub/GitLab client against the fake forge on loopback."""

from __future__ import annotations

import json

import pytest

from mlcd_actions.ci import forges as hosting
from mlcd_actions.core.errors import ConfigError, ServiceError
from tests.fake_forge import TOKEN, forge  # noqa: F401


def test_github_comment_created_then_updated(forge):  # noqa: F811
    gh = hosting.from_env("github", env=forge.github_env())
    first = gh.upsert_comment(7, "<!-- m -->\nfirst", "<!-- m -->")
    second = gh.upsert_comment(7, "<!-- m -->\nsecond", "<!-- m -->")
    assert first["action"] == "created" and second["action"] == "updated"
    assert first["id"] == second["id"]
    assert [c["body"] for c in forge.state.comments.values()] == ["<!-- m -->\nsecond"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in forge.state.requests)


def test_gitlab_issue_upsert_and_trigger(forge):  # noqa: F811
    gl = hosting.from_env("gitlab", env=forge.gitlab_env())
    a = gl.upsert_issue("drift", "<!-- i -->\none", "<!-- i -->")
    b = gl.upsert_issue("drift", "<!-- i -->\ntwo", "<!-- i -->")
    assert (a["action"], b["action"], a["number"]) == ("created", "updated", b["number"])
    done = gl.trigger_pipeline("main", {"MLCD_RETRAIN": "true"})
    assert done["pipeline_id"] and forge.state.pipelines[0]["variables"] == {"MLCD_RETRAIN": "true"}


def test_wrong_token_is_a_service_error_naming_the_call(forge):  # noqa: F811
    gh = hosting.from_env("github", env=forge.github_env(GITHUB_TOKEN="nope-nope"))
    with pytest.raises(ServiceError, match=r"GitHub API GET /repos/acme/credit/issues/1/comments "
                                           r"failed: HTTP 401.*check the token"):
        gh.upsert_comment(1, "x", "m")


def test_server_error_is_retried_then_raised(forge):  # noqa: F811
    forge.state.fail_status = 500
    gh = hosting.from_env("github", env=forge.github_env())
    with pytest.raises(ServiceError, match="HTTP 500"):
        gh.repository_dispatch("e", {})
    assert len(forge.state.requests) == hosting.RETRIES + 1


def test_unreachable_is_a_service_error(monkeypatch):
    monkeypatch.setattr(hosting, "RETRIES", 0)
    gh = hosting.GitHub("http://127.0.0.1:9", "tok-tok", repository="a/b")
    with pytest.raises(ServiceError, match="ConnectionError"):
        gh.repository_dispatch("e", {})


def test_missing_settings_are_config_errors():
    with pytest.raises(ConfigError, match="GITHUB_REPOSITORY"):
        hosting.from_env("github", env={})
    with pytest.raises(ConfigError, match="GITHUB_TOKEN"):
        hosting.from_env("github", env={"GITHUB_REPOSITORY": "a/b"})
    with pytest.raises(ConfigError, match="--platform"):
        hosting.from_env(None, env={})


def test_pull_request_number_from_event_ref_and_gitlab(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    assert hosting.pull_request_number({"GITHUB_EVENT_PATH": str(event)}) == 12
    assert hosting.pull_request_number({"GITHUB_REF": "refs/pull/34/merge"}) == 34
    assert hosting.pull_request_number({"CI_MERGE_REQUEST_IID": "5"}) == 5
    assert hosting.pull_request_number({"GITHUB_REF": "refs/heads/main"}) is None


def test_dry_run_masks_the_token():
    gh = hosting.GitHub("https://api.github.com", "sekrit-token-value", dry_run=True,
                        repository="a/b")
    gh.repository_dispatch("retrain", {"x": 1})
    text = gh.sent[0].describe()
    assert "sekrit-token-value" not in text and "***" in text and "/repos/a/b/dispatches" in text

"""deploy -> smoke-test -> deploy -> rollback with the `local` target and a real MLflow
registry (SQLite), through the CLI as a user calls it."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.usefixtures("stop_deployments")


def metadata(url):
    with urllib.request.urlopen(url + "/metadata", timeout=5) as resp:
        return json.load(resp)


def alias(name, alias_name):
    from mlflow import MlflowClient

    from mlcd_actions.models import tracking

    tracking.configure()
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias_name).version)
    except Exception:  # noqa: BLE001
        return None


def state(env):
    return json.load(open(f".mlcd/deployments/{env}.json"))


def test_staging_then_production_with_rollback(mlcd, registered):
    g1, g2 = (registered["versions"][v]["golden"] for v in ("1", "2"))
    r = mlcd("deploy", "--environment", "staging", "--model-uri", "models:/demo/1")
    assert r.exit_code == 0, r
    url1 = state("staging")["current"]["url"]
    assert r.verdict == f"mlcd deploy: passed — demo v1 serving in staging at {url1}"
    assert alias("demo", "staging") == "1"
    assert metadata(url1)["model_version"] == "1"

    r = mlcd("smoke-test", "--url", url1, "--samples", g1, "--expect-model-version", "1")
    assert r.exit_code == 0, r
    report = json.load(open(".mlcd/reports/smoke-test.json"))
    assert [row[1] for row in report["tables"][0]["rows"]] == ["passed"] * 5

    # production: champion alias, the previous version recorded
    r = mlcd("deploy", "--environment", "production", "--model-uri", "models:/demo/1")
    assert r.exit_code == 0, r
    assert alias("demo", "champion") == "1"
    r = mlcd("deploy", "--environment", "production", "--model-uri", "models:/demo/2")
    assert r.exit_code == 0, r
    assert r.verdict.endswith("(was v1)")
    prod2 = state("production")["current"]["url"]
    assert alias("demo", "champion") == "2"
    assert metadata(prod2)["model_version"] == "2"

    # v2 fails the production smoke test (golden samples of v1 expected) ...
    r = mlcd("smoke-test", "--url", prod2, "--samples", g1, "--expect-model-version", "1")
    assert r.exit_code == 1, r
    assert "metadata: serves version 2, expected 1" in r.verdict
    # ... so it is rolled back: the old version answers again with the old alias
    r = mlcd("rollback", "--environment", "production")
    assert r.exit_code == 0, r
    prod1 = state("production")["current"]["url"]
    assert r.verdict == f"mlcd rollback: passed — production rolled back to v1 from v2 at {prod1}"
    assert alias("demo", "champion") == "1"
    assert metadata(prod1)["model_version"] == "1"
    r = mlcd("smoke-test", "--url", prod1, "--samples", g1, "--expect-model-version", "1")
    assert r.exit_code == 0, r
    # the replaced v2 process is gone
    with pytest.raises(OSError):
        urllib.request.urlopen(prod2 + "/health", timeout=2)
    # staging was never touched
    assert metadata(url1)["model_version"] == "1"
    assert g2  # v2's golden file exists for the regression check below


def test_golden_mismatch_fails_with_table(mlcd, registered):
    g1 = registered["versions"]["1"]["golden"]
    r = mlcd("deploy", "--environment", "staging", "--model-uri", "models:/demo/1")
    assert r.exit_code == 0, r
    url = state("staging")["current"]["url"]
    gold = json.load(open(g1))
    gold["predictions"] = [1 - p for p in gold["predictions"]]
    json.dump(gold, open("wrong.json", "w"))
    r = mlcd("smoke-test", "--url", url, "--samples", "wrong.json")
    assert r.exit_code == 1, r
    assert "golden: 5 of 5 golden rows differ (first: row 0)" in r.verdict
    assert "| golden | failed |" in open(".mlcd/reports/smoke-test.md").read()


def test_unhealthy_new_version_keeps_old_one_serving(mlcd, registered, tmp_path):
    r = mlcd("deploy", "--environment", "staging", "--model-uri", "models:/demo/1")
    assert r.exit_code == 0, r
    before = state("staging")
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    r = mlcd("deploy", "--environment", "staging", "--model-uri", str(bad),
             "--health-timeout", "20")
    assert r.exit_code == 1, r
    assert "exited before it became healthy" in r.verdict
    assert state("staging") == before
    assert metadata(before["current"]["url"])["model_version"] == "1"
    assert alias("demo", "staging") == "1"


@pytest.mark.parametrize("args,code,needle", [
    (["deploy", "--environment", "staging", "--target", "nope"], 2, "Invalid value for '--target'"),
    (["deploy", "--environment", "staging"], 2, "--target local runs the model directly"),
    (["deploy", "--environment", "staging", "--target", "docker"], 2, "pass --image"),
    (["deploy", "--environment", "../x", "--model-uri", "models:/demo/1"], 2,
     "not a valid environment name"),
    (["rollback", "--environment", "staging"], 2, "nothing to roll back to in staging"),
    (["smoke-test", "--url", "localhost:1"], 2, "is not an http(s) URL"),
    (["smoke-test", "--url", "http://127.0.0.1:9", "--timeout", "1"], 1,
     "ready: http://127.0.0.1:9/health did not answer 200 within 1s"),
])
def test_bad_input(mlcd, registered, args, code, needle):
    r = mlcd(*args)
    assert r.exit_code == code, r
    assert needle in r.verdict
    assert "Traceback" not in r.output


def test_rollback_from_registry_without_state(mlcd, registered):
    """A fresh CI job has no deployment record: the registry says what ran before."""
    import shutil

    assert mlcd("deploy", "--environment", "staging", "--model-uri", "models:/demo/1").exit_code == 0
    assert mlcd("deploy", "--environment", "staging", "--model-uri", "models:/demo/2").exit_code == 0
    from mlcd_actions.deploy.base import Deployment
    from mlcd_actions.deploy.local import LocalTarget

    LocalTarget().stop(Deployment.from_dict(state("staging")["current"]))
    shutil.rmtree(".mlcd/deployments")
    r = mlcd("rollback", "--environment", "staging", "--name", "demo", "--target", "local")
    assert r.exit_code == 0, r
    assert alias("demo", "staging") == "1"
    assert metadata(state("staging")["current"]["url"])["model_version"] == "1"
    # the promotion history said what served before v2, and records the rollback
    from mlcd_actions.delivery.history import Ledger

    assert [(e.action, e.from_version, e.to_version) for e in Ledger("demo").entries("staging")] \
        == [("deploy", None, "1"), ("deploy", "1", "2"), ("rollback", "2", "1")]
    # v2 was rolled back: a second rollback does not bring it back
    r = mlcd("rollback", "--environment", "staging", "--name", "demo")
    assert r.exit_code == 2 and "nothing to roll back to" in r.verdict, r

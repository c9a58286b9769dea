"""Governed promotion against a real ``mlflow server`` and real processes (``local`` target,
nginx as the router): shadow, canary, promote, rollback, the promotion history, audited
overrides and two promotions racing for one environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.service,
              pytest.mark.usefixtures("stop_deployments"),
              # mlflow asks the broken pyfunc model below for type hints
              pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict`:UserWarning")]
ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"a": 0.3, "b": -0.1}, {"a": -1.2, "b": 0.4}, {"a": 0.9, "b": 0.8}]

BROKEN_MODEL = '''
import mlflow
from mlflow.pyfunc import PythonModel


class Broken(PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("this candidate is broken")


mlflow.models.set_model(Broken())
'''


@pytest.fixture(scope="module")
def promo_models(mlflow_server, tmp_path_factory):
    """Three logged models on the server: two logistic regressions and one that answers
    every /predict with a 500. ``register(name)`` makes them versions 1, 2, 3 of ``name``."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    work = tmp_path_factory.mktemp("promo-models")
    mlflow.set_tracking_uri(mlflow_server)
    exp = mlflow.create_experiment(f"promo-{os.getpid()}-{time.time_ns()}")
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X.a + X.b > 0).astype(int)
    uris = []
    for C in (1.0, 0.5):
        with mlflow.start_run(experiment_id=exp):
            model = LogisticRegression(C=C).fit(X, y)
            info = mlflow.sklearn.log_model(model, name="model",
                                            signature=infer_signature(X, model.predict(X)),
                                            pip_requirements=["scikit-learn", "pandas"])
            uris.append(info.model_uri)
    code = work / "broken_model.py"
    code.write_text(BROKEN_MODEL)
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code),
                                       signature=infer_signature(X, y),
                                       pip_requirements=["pandas"])
        uris.append(info.model_uri)
    # the newest labels are noisy: one in five flipped (what an override is for)
    noisy = y.head(60).where(np.arange(60) % 5 != 0, 1 - y.head(60))
    test = X.head(60).assign(y=noisy)
    test_path = work / "test.csv"
    test.to_csv(test_path, index=False)
    mlflow.set_tracking_uri(None)

    def register(name: str) -> str:
        mlflow.set_tracking_uri(mlflow_server)
        for uri in uris:
            mlflow.register_model(uri, name)
        mlflow.set_tracking_uri(None)
        return name

    return {"uri": mlflow_server, "register": register, "test": str(test_path)}


@pytest.fixture
def model(promo_models, monkeypatch, request):
    """A fresh registered model (versions 1, 2, 3 = broken) for the test; the tracking
    server is the module's ``mlflow server``."""
    name = promo_models["register"](f"promo-{request.node.name[5:25]}-{time.time_ns() % 10**8}")
    # after registering: mlflow.set_tracking_uri() rewrites MLFLOW_TRACKING_URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", promo_models["uri"])
    return name


def state(env="production"):
    return json.load(open(f".mlcd/deployments/{env}.json"))


def predict(url, rows=ROWS, timeout=10):
    req = urllib.request.Request(url + "/predict", data=json.dumps(rows).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def metadata(url):
    with urllib.request.urlopen(url + "/metadata", timeout=5) as resp:
        return json.load(resp)


def alias(name, alias_name="champion"):
    from mlflow import MlflowClient

    from mlcd_actions.models import tracking

    tracking.configure()
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias_name).version)
    except Exception:  # noqa: BLE001 - alias not set
        return None


def entries(name, env="production"):
    from mlcd_actions.delivery.history import Ledger

    return Ledger(name).entries(env)


class Client(threading.Thread):
    """Sends /predict to ``url`` until stopped, counting answers per version and failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.halt = threading.Event()
        self.versions: dict[str, int] = {}
        self.failures: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                v = str(predict(self.url)["model_version"])
                self.versions[v] = self.versions.get(v, 0) + 1
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def test_shadow_mirrors_every_request_answers_from_serving_then_promote(mlcd, model):
    r = mlcd("deploy", "--environment", "production", "--model-uri", f"models:/{model}/1",
             "--reason", "first release")
    assert r.exit_code == 0, r
    v1_url = state()["current"]["url"]
    r = mlcd("deploy", "--environment", "production", "--model-uri", f"models:/{model}/2",
             "--strategy", "shadow")
    assert r.exit_code == 0, r
    front = state()["router"]["url"]
    assert r.verdict == (f"mlcd deploy: passed — shadow: v2 beside v1 in production receiving "
                         f"a copy of every request; clients use {front}")
    assert alias(model) == "1"  # a shadow moves nothing
    answers = [predict(front)["model_version"] for _ in range(30)]
    assert answers == ["1"] * 30  # clients get the serving version's answers

    r = mlcd("promote", "--environment", "production", "--min-requests", "30",
             "--threshold", "error_rate<=0", "--threshold", "agreement>=0.6")
    assert r.exit_code == 0, r
    report = json.load(open(".mlcd/reports/promote.json"))
    m = report["metrics"]
    # every one of the 30 requests reached both versions, row by row
    assert (m["requests"], m["candidate_requests"], m["serving_requests"]) == (30, 30, 30)
    assert m["compared_rows"] == 90 and m["candidate_share"] == 100.0
    assert m["error_rate"] == 0 and m["client_errors"] == 0
    assert m["candidate_p95_ms"] > 0 and m["serving_p95_ms"] > 0
    assert 0.6 <= m["agreement"] <= 1 and m["max_proba_delta"] > 0
    # the candidate took over: alias, history, /metadata through the router agree
    assert alias(model) == "2"
    assert metadata(front)["model_version"] == "2" and predict(front)["model_version"] == "2"
    with pytest.raises(OSError):
        urllib.request.urlopen(v1_url + "/health", timeout=2)
    hist = entries(model)
    assert [(e.action, e.from_version, e.to_version, e.moves_alias) for e in hist] == [
        ("deploy", None, "1", True), ("start", "1", "2", False), ("promote", "1", "2", True)]
    assert hist[0].reason == "first release" and hist[2].strategy == "shadow"
    assert all(e.actor for e in hist)

    r = mlcd("history", "--environment", "production")
    assert r.exit_code == 0, r
    assert f"3 entries for {model} in production; serving v2; last: promote v1 -> v2" \
        in r.verdict
    assert "promote  v1 -> v2" in r.stdout and "— first release" in r.stdout
    hist_report = json.load(open(".mlcd/reports/history.json"))
    assert hist_report["details"]["agreement"] == {"history": "2", "alias": "2",
                                                   "metadata": "2"}
    assert "promotion history of" in open(".mlcd/reports/history.md").read()


def test_erroring_canary_caught_by_the_gate_old_version_serves_throughout(mlcd, model):
    # a router in front from the first deploy on: --proxy-port (0: any free port)
    r = mlcd("deploy", "--environment", "production", "--model-uri", f"models:/{model}/2",
             "--proxy-port", "0")
    assert r.exit_code == 0, r
    front = state()["router"]["url"]
    client = Client(front)
    client.start()
    try:
        r = mlcd("deploy", "--environment", "production", "--model-uri", f"models:/{model}/3",
                 "--strategy", "canary", "--traffic", "30")
        assert r.exit_code == 0, r
        time.sleep(1.0)
        r = mlcd("promote", "--environment", "production", "--min-requests", "40")
        assert r.exit_code == 1, r
        assert "error_rate = 1 misses <= 0.01" in r.verdict
        assert r.verdict.endswith("aborted, v2 keeps serving")
        time.sleep(0.5)
    finally:
        client.stop()
    assert client.failures == []  # not one client request failed, switches included
    assert set(client.versions) == {"2"}  # the candidate's errors were retried on v2
    m = json.load(open(".mlcd/reports/promote.json"))["metrics"]
    assert m["candidate_requests"] >= 40 and m["candidate_errors"] == m["candidate_requests"]
    assert m["client_errors"] == 0
    assert 15 <= m["candidate_share"] <= 45  # 30% +- 15
    assert alias(model) == "2" and state().get("candidate") is None
    assert metadata(front)["model_version"] == "2"
    assert [(e.action, e.to_version) for e in entries(model)] == [
        ("deploy", "2"), ("start", "3"), ("abort", "2")]
    assert front != state()["current"]["url"]  # clients never used the app's own URL


def test_canary_splits_within_tolerance_and_rollback_aborts(mlcd, model):
    assert mlcd("deploy", "--environment", "production",
                "--model-uri", f"models:/{model}/1").exit_code == 0
    r = mlcd("deploy", "--environment", "production", "--model-uri", f"models:/{model}/2",
             "--strategy", "canary", "--traffic", "25")
    assert r.exit_code == 0, r
    front = r.stdout.rsplit("clients use ", 1)[1].split()[0]
    answers = [predict(front)["model_version"] for _ in range(200)]
    # binomial(200, 0.25): sd 6.1 answers; +-10 points is over 3 sd
    assert 30 <= answers.count("2") <= 70, answers.count("2")
    assert answers.count("1") + answers.count("2") == 200
    # a second rollout while one runs is refused
    r = mlcd("deploy", "--environment", "production", "--model-uri", f"models:/{model}/3",
             "--strategy", "shadow")
    assert r.exit_code == 2 and "a canary of v2 runs in production" in r.verdict, r
    r = mlcd("rollback", "--environment", "production", "--reason", "product said no")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd rollback: passed — canary of v2 aborted in production; "
                                "v1 keeps serving")
    assert [predict(front)["model_version"] for _ in range(10)] == ["1"] * 10
    assert alias(model) == "1"
    last = entries(model)[-1]
    assert (last.action, last.from_version, last.to_version, last.reason) == (
        "abort", "2", "1", "product said no")


def test_two_promotions_at_once_one_wins_and_the_loser_says_why(mlcd, model, tmp_path):
    assert mlcd("deploy", "--environment", "production",
                "--model-uri", f"models:/{model}/1").exit_code == 0
    # two CI runners: each its own deployment record, one registry
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLCD_PROGRESS": "0"}
    procs = []
    for v in ("2", "3"):
        runner = tmp_path / f"runner{v}"
        runner.mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "mlcd_actions", "deploy", "--environment", "production",
             "--model-uri", f"models:/{model}/{v}", "--state-dir", str(runner / "deployments"),
             "--report-dir", str(runner / "reports")],
            cwd=runner, env={**env, "USER": f"runner{v}"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]
    try:
        assert sorted(codes) == [0, 1], outs
        winner = ("2", "3")[codes.index(0)]
        loser_out = outs[codes.index(1)].strip().splitlines()
        assert "Traceback" not in outs[codes.index(1)]
        assert loser_out[-1].startswith("mlcd deploy: failed — production changed while this "
                                        f"promotion ran: deploy v1 -> v{winner} by runner"), \
            loser_out
        assert alias(model) == winner
        moves = [(e.from_version, e.to_version) for e in entries(model) if e.moves_alias]
        assert moves == [(None, "1"), ("1", winner)]
        loser_dir = tmp_path / f"runner{('2', '3')[codes.index(1)]}" / "deployments"
        assert not (loser_dir / "production.json").exists()  # nothing recorded as deployed
    finally:
        from mlcd_actions.deploy.base import Deployment
        from mlcd_actions.deploy.local import LocalTarget

        for v in ("2", "3"):
            path = tmp_path / f"runner{v}" / "deployments" / "production.json"
            if path.exists():
                LocalTarget().stop(Deployment.from_dict(json.load(open(path))["current"]))


def test_override_is_audited_and_honoured_only_for_its_gate_and_version(mlcd, model,
                                                                         promo_models):
    test = promo_models["test"]
    gate = ["--test", test, "--label", "y", "--threshold", "accuracy>=0.9"]
    r = mlcd("evaluate", "--model-uri", f"models:/{model}/1", *gate)
    assert r.exit_code == 1, r

    r = mlcd("override", "--stage", "evaluate", "--model-uri", f"models:/{model}/1")
    assert r.exit_code == 2 and "--reason is required" in r.verdict, r
    r = mlcd("override", "--stage", "evaluate", "--model-uri", f"models:/{model}/1",
             "--reason", "   ")
    assert r.exit_code == 2, r

    # an override of another gate, and of this gate for another version: ignored, said so
    ci = {"GITHUB_ACTOR": "alice", "GITHUB_RUN_ID": "77", "GITHUB_REPOSITORY": "acme/credit"}
    assert mlcd("override", "--stage", "check-fairness", "--model-uri", f"models:/{model}/1",
                "--reason", "groups too small", env=ci).exit_code == 0
    assert mlcd("override", "--stage", "evaluate", "--model-uri", f"models:/{model}/2",
                "--reason", "v2 only", env=ci).exit_code == 0
    r = mlcd("evaluate", "--model-uri", f"models:/{model}/1", *gate)
    assert r.exit_code == 1, r
    warnings = json.load(open(".mlcd/reports/evaluate.json"))["warnings"]
    assert f"override of check-fairness for {model} v1 by alice ignored: evaluate of " \
           f"{model} v1 honours only its own gate and version" in warnings
    assert f"override of evaluate for {model} v2 by alice ignored: evaluate of {model} v1 " \
           "honours only its own gate and version" in warnings

    r = mlcd("override", "--stage", "evaluate", "--model-uri", f"models:/{model}/1",
             "--reason", "label noise in the new test set, ticket ML-42", env=ci)
    assert r.exit_code == 0, r
    assert r.verdict == (f"mlcd override: passed — evaluate gate of {model} v1 may pass: "
                         "approved by alice — label noise in the new test set, ticket ML-42")
    r = mlcd("evaluate", "--model-uri", f"models:/{model}/1", *gate)
    assert r.exit_code == 0, r
    assert "gate overridden by alice: label noise in the new test set, ticket ML-42 — was: " \
           "accuracy = " in r.verdict
    report = json.load(open(".mlcd/reports/evaluate.json"))
    ov = report["details"]["override"]
    assert (ov["approver"], ov["model_version"], ov["failed_gates"]) == ("alice", "1",
                                                                        ["accuracy"])
    assert ov["run_url"] == "https://github.com/acme/credit/actions/runs/77"
    assert report["gates"][0]["verdict"] == "failed"  # the gate itself stays failed
    assert "(overridden by alice)" in report["gates"][0]["message"]
    # the record is in the registry, and in the PR/MR comment's summary
    from mlflow import MlflowClient

    from mlcd_actions.models import tracking

    tracking.configure()
    tag = json.loads(MlflowClient().get_model_version(model, "1").tags["mlcd.override.evaluate"])
    assert (tag["approver"], tag["reason"], tag["stage"]) == (
        "alice", "label noise in the new test set, ticket ML-42", "evaluate")
    assert mlcd("report").exit_code == 0
    summary = open(".mlcd/reports/summary.md").read()
    assert "label noise in the new test set, ticket ML-42" in summary
    # v2 passes by its own override, not by v1's
    r = mlcd("evaluate", "--model-uri", f"models:/{model}/2", *gate)
    assert r.exit_code == 0 and "gate overridden by alice: v2 only — was: " in r.verdict, r

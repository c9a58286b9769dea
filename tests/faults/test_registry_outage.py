"""Faults in the middle of a run: the MLflow server goes away during ``deploy``'s alias move.

The shared ``mlflow server`` sits behind a proxy that, from the alias request on, answers
503 to everything (what a client sees while the server restarts or a balancer drains
it). ``mlcd deploy`` of v2 over a serving v1 must end with one line and exit 3, the new
version stopped, v1 still serving, the alias and the deployment state as they were; once
the server answers again a rerun promotes v2.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.cli.test_register import FAST_FAIL, _KillingProxy

pytestmark = pytest.mark.usefixtures("stop_deployments")


def _log_two_versions(uri: str, name: str) -> None:
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    client = mlflow.MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment(f"outage-{name}")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    y = (X.a + X.b > 0).astype(int)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for C in (1.0, 0.01):
        with mlflow.start_run(experiment_id=exp):
            model = LogisticRegression(C=C).fit(X, y)
            mlflow.sklearn.log_model(model, name="model",
                                     signature=infer_signature(X, model.predict(X)),
                                     pip_requirements=["scikit-learn"],
                                     registered_model_name=name)


def _serving(name: str, version: str) -> list[int]:
    """Pids of local deployments serving ``models:/name/version``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if f"models:/{name}/{version} " in cmd + " " and "serve" in cmd:
                pids.append(int(proc.name))
    return pids


def test_registry_down_during_the_alias_move_leaves_v1_serving(mlcd, mlflow_server):
    from mlflow import MlflowClient

    name = f"outage-{uuid.uuid4().hex[:8]}"
    _log_two_versions(mlflow_server, name)
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    proxy = _KillingProxy(mlflow_server, lambda: None, trigger="registered-models/alias")
    try:
        r = mlcd("deploy", "--environment", "production", "--target", "local",
                 "--model-uri", f"models:/{name}/1", "--tracking-uri", mlflow_server)
        assert r.exit_code == 0, r
        state_before = Path(".mlcd/deployments/production.json").read_bytes()
        url1 = json.loads(state_before)["current"]["url"]
        v2_tags = dict(client.get_model_version(name, "2").tags)

        r = mlcd("deploy", "--environment", "production", "--target", "local",
                 "--model-uri", f"models:/{name}/2", "--tracking-uri", proxy.url,
                 env={**FAST_FAIL, "MLCD_PROGRESS": "0"})
        assert r.exit_code == 3, r
        # the first alias request (reading where it points, then moving it) fails
        assert "unavailable while" in r.verdict and "alias 'champion'" in r.verdict, r
        assert "Traceback" not in r.output
        assert any("alias" in p for p in proxy.seen)
    finally:
        proxy.close()
    assert Path(".mlcd/deployments/production.json").read_bytes() == state_before
    with urllib.request.urlopen(url1 + "/metadata", timeout=10) as resp:
        assert json.load(resp)["model_version"] == "1"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert _serving(name, "2") == []  # the new version was stopped
    assert not os.path.exists(".mlcd/deployments/production.lock") or \
        Path(".mlcd/deployments/production.lock").read_text() == ""
    leftover = {k: v for k, v in client.get_model_version(name, "2").tags.items()
                if v2_tags.get(k) != v}
    assert leftover == {}, f"v2 tagged although it never served: {leftover}"

    r = mlcd("deploy", "--environment", "production", "--target", "local",
             "--model-uri", f"models:/{name}/2", "--tracking-uri", mlflow_server)
    assert r.exit_code == 0, r
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"

"""Registered models for the production-stage tests: two versions of a tiny classifier in a
SQLite MLflow store in the test's directory, plus golden samples for each."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def _log_versions(store: Path, name: str = "demo") -> dict:
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.create_experiment("prod-tests", artifact_location=(store / "art").as_uri())
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X.a + X.b > 0).astype(int)
    out = {"tracking_uri": uri, "name": name, "versions": {}}
    for version, C in (("1", 1.0), ("2", 0.001)):
        with mlflow.start_run(experiment_id=exp) as run:
            model = LogisticRegression(C=C).fit(X, y)
            mlflow.sklearn.log_model(model, name="model",
                                     signature=infer_signature(X, model.predict(X)),
                                     pip_requirements=["scikit-learn", "pandas"],
                                     registered_model_name=name)
            rows = X.head(5)
            golden = {"inputs": rows.to_dict(orient="records"),
                      "predictions": model.predict(rows).tolist(),
                      "probabilities": model.predict_proba(rows).tolist()}
            path = store / f"golden-v{version}.json"
            path.write_text(json.dumps(golden))
            out["versions"][version] = {"run_id": run.info.run_id, "golden": str(path)}
    import mlflow.tracking._model_registry.utils as registry
    import mlflow.tracking._tracking_service.utils as tracking

    tracking._tracking_uri = None
    registry._registry_uri = None
    return out


@pytest.fixture(scope="session")
def _registered_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("registry")
    return store, _log_versions(store)


@pytest.fixture
def registered(_registered_store, monkeypatch, tmp_path):
    """A fresh copy of a store holding ``models:/demo/1`` and ``models:/demo/2``."""
    import shutil

    src, info = _registered_store
    dst = tmp_path / "registry"
    shutil.copytree(src, dst)
    # artifact locations are absolute paths into the session store, read-only use only
    uri = f"sqlite:///{dst / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return {**info, "tracking_uri": uri}


@pytest.fixture
def stop_deployments():
    """Stop every local deployment a test leaves behind."""
    yield
    from mlcd_actions.deploy.base import Deployment
    from mlcd_actions.deploy.local import LocalTarget

    states = Path(".mlcd/deployments")
    if not states.is_dir():
        return
    from mlcd_actions.deploy.router import NginxRouter

    for path in states.glob("*.json"):
        data = json.loads(path.read_text())
        if data.get("router"):
            NginxRouter(path.stem, states).stop()
        for key in ("current", "previous", "candidate"):
            dep = Deployment.from_dict(data.get(key))
            if dep and dep.target == "local":
                LocalTarget().stop(dep)
        for dep in data.get("history", []):
            d = Deployment.from_dict(dep)
            if d and d.target == "local" and d.handle.get("pid"):
                try:
                    os.kill(d.handle["pid"], 0)
                except ProcessLookupError:
                    continue
                LocalTarget().stop(d)

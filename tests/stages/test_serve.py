"""``mlcd serve`` with a registry URI and several workers (real subprocess, real store)."""

from __future__ import annotations

import json
import signal

import pytest

from tests.delivery.serving import fixtures
from tests.services import free_port


def _register(tmp_path):
    """Log + register the binary model in a SQLite store with a lineage tag on the run."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.create_experiment("serve-test", artifact_location=(tmp_path / "art").as_uri())
    df = fixtures.frame()
    X, y = df[fixtures.FEATURES], df["y"]
    model = fixtures._pipeline(LogisticRegression()).fit(X, y)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.set_tag("mlcd.lineage_id", "lin-registry-1")
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, y),
                                 pip_requirements=fixtures.PIP, registered_model_name="churn",
                                 metadata={"mlcd": {"task": "classification", "label": "y"}})
    mlflow.MlflowClient().set_registered_model_alias("churn", "champion", "1")
    return uri, run.info.run_id


@pytest.mark.slow
def test_registry_alias_with_two_workers(tmp_path):
    uri, run_id = _register(tmp_path)
    log = tmp_path / "pl.jsonl"
    env = fixtures.env_for_subprocess(MLFLOW_TRACKING_URI=uri)
    df = fixtures.frame(8, seed=21)
    with fixtures.serve("models:/churn@champion", free_port(), "--workers", "2",
                        "--prediction-log", str(log), "--report-dir", str(tmp_path / "rep"),
                        env=env, startup_timeout=240) as s:
        status, _, meta = s.request("GET", "/metadata")
        assert status == 200
        assert (meta["model_name"], meta["model_version"]) == ("churn", "1")
        assert meta["lineage_id"] == "lin-registry-1" and meta["run_id"] == run_id
        records = df[fixtures.FEATURES].to_dict(orient="records")
        answers = [s.post(records[i:i + 2]) for i in range(0, 8, 2)]
        code, stdout, stderr = s.stop(signal.SIGTERM, timeout=60)
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1].startswith("mlcd serve: passed")
    preds = [p for status, _, out in answers for p in out["predictions"]]
    assert all(status == 200 for status, _, _ in answers)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 8  # every worker flushed its lines at shutdown
    assert {(x["model_name"], x["model_version"], x["lineage_id"]) for x in lines} == \
        {("churn", "1", "lin-registry-1")}
    by_request = sorted(lines, key=lambda x: ([o["request_id"] for _, _, o in answers]
                                              .index(x["request_id"]), x["row"]))
    assert [x["prediction"] for x in by_request] == preds

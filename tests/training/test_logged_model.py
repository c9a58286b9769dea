"""``mlcd train`` logging a built-in model without ``mlflow.sklearn`` leaves the tracking
store as ``Model.log`` leaves it: the run (tags, params, metrics, its model output), the
logged model (name, status, tags, params, metrics, link to the run) and its artifacts,
against the embedded SQLite store and a real ``mlflow server``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlcd_actions.stages import train as stage

DATA = Path(__file__).resolve().parents[1] / "data" / "train"
# what differs between two runs by construction: ids, times, the random run name
IDS = {"run_id", "model_uuid", "model_id", "utc_time_created", "artifact_path"}
RUN_TAGS_WITH_IDS = {"mlflow.runName", "mlcd.model_uri", "mlcd.model_id"}


def _state(uri: str, res) -> dict:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run_id, model_id = res.outputs["run-id"], res.outputs["model-id"]
    run = client.get_run(run_id)
    logged = client.get_logged_model(model_id)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}", tracking_uri=uri))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    mlmodel["metadata"]["mlcd"].pop("run_id")  # the run's id, asserted below
    assert mlmodel["model_id"] == model_id and mlmodel["run_id"] == run_id
    assert res.outputs["run-id"] == run_id
    assert mlmodel["artifact_path"] == logged.artifact_location
    files = {p.relative_to(local).as_posix(): p.read_bytes()
             for p in sorted(local.rglob("*")) if p.is_file() and p.name != "MLmodel"}
    # two fits pickle to bytes that may differ (object identities); the files written
    # from one object are byte-equal (tests/training/test_sklearn_model.py): compare what
    # the model predicts, through mlflow
    import cloudpickle
    import pandas as pd

    model = cloudpickle.loads(files.pop("model.pkl"))
    frame = pd.read_parquet(DATA / "clf_test.parquet").drop(columns=["approved"])
    files["predictions"] = model.predict_proba(frame).tobytes()
    size = mlmodel.pop("model_size_bytes")
    assert size == sum(p.stat().st_size for p in local.iterdir()
                       if p.name in ("model.pkl", "input_example.json",
                                     "serving_input_example.json"))
    return {
        "run_status": run.info.status,
        "run_tags": {k: v for k, v in run.data.tags.items()
                     if k not in RUN_TAGS_WITH_IDS},
        "params": run.data.params,
        "metric_keys": sorted(run.data.metrics),
        "outputs": [(o.model_id == model_id, o.step) for o in run.outputs.model_outputs],
        "model": {"name": logged.name, "status": str(logged.status),
                  "source_run": logged.source_run_id == run_id, "type": logged.model_type,
                  "tags": logged.tags, "params": logged.params,
                  "metrics": sorted((m.key, m.step) for m in logged.metrics or [])},
        "files": files,
        "mlmodel": {k: v for k, v in mlmodel.items() if k not in IDS},
    }


@pytest.mark.parametrize("backend", ["sqlite", "server"])
def test_light_logging_leaves_what_model_log_leaves(backend, isolated, monkeypatch,
                                                    request, tmp_path):
    uri = (request.getfixturevalue("mlflow_server") if backend == "server"
           else f"sqlite:///{tmp_path / 'mlflow.db'}")

    def train():
        res = stage.run(str(DATA / "clf_train.parquet"), label="approved",
                        estimator="random_forest_classifier", tracking_uri=uri,
                        echo_log=False, experiment=f"light-{backend}")
        assert res.status == "passed", res.reason
        return res

    light = train()
    planned = []
    real_plan = stage._light_plan
    monkeypatch.setattr(stage, "_light_plan",
                        lambda *a: planned.append(real_plan(*a)))  # mlflow writes it
    heavy = train()
    assert planned and planned[0] is not None  # the same model would have been light
    ours, theirs = _state(uri, light), _state(uri, heavy)
    for key in theirs:
        if key == "files":
            for name in sorted(set(ours[key]) | set(theirs[key])):
                assert ours[key].get(name) == theirs[key].get(name), name
        assert ours[key] == theirs[key], key

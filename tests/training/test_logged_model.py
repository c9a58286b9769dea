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
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location,
                                                     tracking_uri=uri))
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
                  # Model.log copies the run's step-0 metrics: the heartbeat's when the
                  # fit took under a second (the other metrics come after the model)
                  "metrics": sorted((m.key, m.step) for m in logged.metrics or []) == (
                      [("mlcd_heartbeat", 0)] if any(
                          m.step == 0 for m in client.get_metric_history(
                              run_id, "mlcd_heartbeat")) else [])},
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

    from mlcd_actions.models import tracking_rest

    light = train()
    planned = []
    real_plan = stage._light_plan
    monkeypatch.setattr(stage, "_light_plan",
                        lambda *a: planned.append(real_plan(*a)))  # mlflow writes it
    monkeypatch.setattr(tracking_rest, "train_client_for", lambda *a, **k: None)  # and logs
    heavy = train()
    assert planned and planned[0] is not None  # the same model would have been light
    ours, theirs = _state(uri, light), _state(uri, heavy)
    for key in theirs:
        if key == "files":
            for name in sorted(set(ours[key]) | set(theirs[key])):
                assert ours[key].get(name) == theirs[key].get(name), name
        assert ours[key] == theirs[key], key


def test_train_on_a_server_imports_no_mlflow(mlflow_server, isolated):
    """``mlcd train`` with a built-in estimator against a tracking server: the run, the
    logged model and its artifacts over REST, no ``import mlflow`` in the process."""
    import subprocess
    import sys

    code = f"""
import sys
from mlcd_actions.stages import train
res = train.run({str(DATA / "clf_train.parquet")!r}, label="approved",
                estimator="gradient_boosting_classifier", tracking_uri={mlflow_server!r},
                echo_log=False, experiment="no-mlflow")
assert res.status == "passed", res.reason
print(res.outputs["model-id"])
print(sorted(n for n in sys.modules if n == "mlflow" or n.startswith("mlflow.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=isolated)
    assert out.returncode == 0, out.stderr[-3000:]
    model_id, modules = out.stdout.strip().splitlines()[-2:]
    assert modules == "[]"
    import mlflow.artifacts
    import mlflow.pyfunc
    import pandas as pd
    from mlflow import MlflowClient

    logged = MlflowClient(mlflow_server).get_logged_model(model_id)
    assert str(logged.status) == "READY" and logged.source_run_id
    local = mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location,
                                                tracking_uri=mlflow_server)
    model = mlflow.pyfunc.load_model(local)

    frame = pd.read_parquet(DATA / "clf_test.parquet").drop(columns=["approved"])
    assert len(model.predict(frame)) == len(frame)


@pytest.mark.parametrize("case", ["plain", "run_context", "outside_git", "no_argv"])
def test_context_tags_equal_mlflows(case, tmp_path):
    """The logged model's context tags resolved without mlflow equal mlflow's
    ``resolve_tags()`` in the same situation (a fresh process each)."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "main.py"
    script.write_text("")
    env = {**os.environ}
    env.pop("MLFLOW_RUN_CONTEXT", None)
    argv0 = str(Path(__file__))  # inside this repository: git commit, branch, remote
    if case == "run_context":
        env["MLFLOW_RUN_CONTEXT"] = json.dumps({"team": "risk", "mlflow.source.type": "JOB"})
    elif case == "outside_git":
        argv0 = str(script)
    elif case == "no_argv":
        argv0 = ""
    code = f"""
import json, sys
sys.argv = [{argv0!r}]
from mlcd_actions.models import tracking_rest
ours = tracking_rest.context_tags()
from mlflow.tracking.context import registry
print(json.dumps([ours, registry.resolve_tags(None)]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    ours, theirs = json.loads(out.stdout.strip().splitlines()[-1])
    assert ours == theirs


def test_a_model_mlflow_must_write_is_logged_by_mlflow_in_the_rest_run(mlflow_server,
                                                                       isolated):
    """An ``--entrypoint`` returning a model that is not scikit-learn, against a server: the
    run is created over REST, the model is written and logged by mlflow's ``Model.log``
    (python_function), in that run, and loads in mlflow."""
    import shutil

    import mlflow.artifacts
    import mlflow.pyfunc
    import pandas as pd
    from mlflow import MlflowClient

    shutil.copy(DATA / "user_model.py", isolated / "user_model.py")
    res = stage.run(str(DATA / "reg_train.parquet"), label="price",
                    entrypoint="user_model:mean_model", tracking_uri=mlflow_server,
                    echo_log=False, experiment="rest-pyfunc")
    assert res.status == "passed", res.reason
    assert res.details["flavor"] == "python_function"
    client = MlflowClient(mlflow_server)
    logged = client.get_logged_model(res.outputs["model-id"])
    assert logged.source_run_id == res.outputs["run-id"] and str(logged.status) == "READY"
    run = client.get_run(res.outputs["run-id"])
    assert run.info.status == "FINISHED"
    assert [o.model_id for o in run.outputs.model_outputs] == [logged.model_id]
    local = mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location,
                                                tracking_uri=mlflow_server)
    frame = pd.read_parquet(DATA / "reg_test.parquet").drop(columns=["price"])
    assert len(mlflow.pyfunc.load_model(local).predict(frame)) == len(frame)

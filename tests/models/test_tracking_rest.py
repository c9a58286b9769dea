"""``mlcd_actions.models.tracking_rest``: register over plain REST gives what MlflowClient gives,
against a real ``mlflow server``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcd_actions.models import tracking_rest
from mlcd_actions.stages import register, train

DATA = Path(__file__).resolve().parents[1] / "data" / "train"


@pytest.fixture(scope="module")
def trained(mlflow_server, tmp_path_factory):
    res = train.run(str(DATA / "clf_train.parquet"), label="approved",
                    estimator="logistic_regression", code_version="4.2.0",
                    tracking_uri=mlflow_server, echo_log=False,
                    report_dir=str(tmp_path_factory.mktemp("no-reports")))
    assert res.status == "passed", res.reason
    return res.outputs


def _state(client, name: str, version: str) -> dict:
    mv = client.get_model_version(name, version)
    model = client.get_registered_model(name)
    return {"source": mv.source, "run_id": mv.run_id, "model_id": mv.model_id,
            "status": str(mv.status), "tags": mv.tags, "aliases": sorted(model.aliases),
            "model_tags": model.tags}


def test_register_over_rest_equals_register_through_mlflow(trained, mlflow_server, isolated,
                                                           monkeypatch):
    from mlflow import MlflowClient

    assert isinstance(register._Registry(mlflow_server).client, tracking_rest.RestClient)
    light = register.run(trained["model-uri"], "via-rest", tracking_uri=mlflow_server)
    again = register.run(trained["model-uri"], "via-rest", tracking_uri=mlflow_server)
    monkeypatch.setattr(tracking_rest, "client_for", lambda *a, **k: None)
    assert not isinstance(register._Registry(mlflow_server).client, tracking_rest.RestClient)
    slow = register.run(trained["model-uri"], "via-mlflow", tracking_uri=mlflow_server)

    assert (light.details["created"], again.details["created"]) == (True, False)
    assert again.outputs["model-version"] == light.outputs["model-version"]
    assert slow.details["created"] is True
    for key in ("model-version", "lineage-id", "registered-alias"):
        assert light.outputs[key] == slow.outputs[key], key
    assert {k: v for k, v in light.details.items() if k != "duration_s"} == \
        {k: v for k, v in slow.details.items() if k != "duration_s"}
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    version = light.outputs["model-version"]
    assert _state(client, "via-rest", version) == _state(client, "via-mlflow", version)
    run = client.get_run(light.details["run_id"])
    assert run.data.tags["mlcd.registered"] == f"via-mlflow/{version}"  # both set it
    logged = client.get_logged_model(light.details["model_id"])
    linked = json.loads(logged.tags["mlflow.modelVersions"])  # set by the server, both ways
    assert {"name": "via-rest", "version": int(version)} in linked
    assert {"name": "via-mlflow", "version": int(version)} in linked


def test_rest_client_reads_what_mlflow_client_reads(trained, mlflow_server):
    from mlflow import MlflowClient

    rest = tracking_rest.RestClient(mlflow_server)
    ref = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    run_id = trained["run-id"]
    got, want = rest.get_run(run_id), ref.get_run(run_id)
    assert (got.info.run_id, got.info.status, got.info.experiment_id, got.info.artifact_uri) \
        == (want.info.run_id, want.info.status, want.info.experiment_id, want.info.artifact_uri)
    assert got.data.tags == want.data.tags and got.data.params == want.data.params
    model_id = trained["model-id"]
    got, want = rest.get_logged_model(model_id), ref.get_logged_model(model_id)
    for attr in ("model_id", "name", "source_run_id", "creation_timestamp", "tags",
                 "artifact_location"):
        assert getattr(got, attr) == getattr(want, attr), attr
    found = rest.search_logged_models([got.experiment_id], filter_string="name = 'model'")
    assert model_id in {m.model_id for m in found}
    with pytest.raises(tracking_rest.RestError) as err:
        rest.get_run("0" * 32)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST" and err.value.status_code == 404
    assert rest.get_registered_model  # any other method: MLflow's client, made on first use


def test_only_set_ups_it_reproduces_exactly_take_the_rest_path():
    assert tracking_rest.handles("http://127.0.0.1:5000", environ={})
    assert tracking_rest.handles("https://mlflow.example", "https://mlflow.example",
                                 environ={"MLFLOW_TRACKING_TOKEN": "t"})
    assert not tracking_rest.handles("sqlite:///x.db", environ={})
    assert not tracking_rest.handles("databricks", environ={})
    assert not tracking_rest.handles("http://a:5000", "http://b:5000", environ={})
    for env in ({"MLFLOW_TRACKING_AUTH": "plugin"}, {"MLFLOW_TRACKING_AWS_SIGV4": "true"},
                {"MLFLOW_TRACKING_CLIENT_CERT_PATH": "/c.pem"}, {"MLFLOW_WORKSPACE": "team"}):
        assert not tracking_rest.handles("http://127.0.0.1:5000", environ=env), env


def test_register_on_a_server_imports_no_mlflow(trained, mlflow_server):
    """The whole ``mlcd register`` CLI (overrides included) stays on the REST path; a stale
    verdict tag is deleted over REST too."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = ("import json, sys\nfrom mlcd_actions.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "print(json.dumps({'rc': rc, 'mlflow': sorted(m for m in sys.modules "
            "if m.partition('.')[0] == 'mlflow')}))")
    proc = subprocess.run(
        [sys.executable, "-c", code, "register", "--model-uri", trained["model-uri"],
         "--name", "no-mlflow", "--tracking-uri", mlflow_server],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(root), "MLCD_PROGRESS": "0"})
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"rc": 0, "mlflow": []}, proc.stderr[-2000:]

    from mlflow import MlflowClient

    rest = tracking_rest.RestClient(mlflow_server)
    version = json.loads(Path(".mlcd/reports/register.json").read_text())["outputs"][
        "model-version"]
    rest.set_model_version_tag("no-mlflow", version, "mlcd.evaluate.stale", "x")
    rest.delete_model_version_tag("no-mlflow", version, "mlcd.evaluate.stale")
    tags = MlflowClient(mlflow_server, registry_uri=mlflow_server).get_model_version(
        "no-mlflow", version).tags
    assert "mlcd.evaluate.stale" not in tags and tags["mlcd.run_id"] == trained["run-id"]

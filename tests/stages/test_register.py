"""``mlcd_actions.stages.register`` on the embedded SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcd_actions.core import reporting as report
from mlcd_actions.core.errors import ConfigError, StageFailed
from mlcd_actions.core.results import StageResult
from mlcd_actions.stages import register, train

DATA = Path(__file__).resolve().parents[1] / "data" / "train"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One model trained into a module-wide SQLite store: (tracking uri, train result)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('reg-sqlite') / 'mlflow.db'}"
    res = train.run(str(DATA / "clf_train.parquet"), label="approved",
                    estimator="logistic_regression", code_version="2.0.0",
                    data_version="dv-9", tracking_uri=uri, echo_log=False,
                    report_dir=str(tmp_path_factory.mktemp("reports")))
    assert res.status == "passed", res.reason
    return uri, res


def test_register_twice_gives_one_version_with_lineage_and_verdicts(trained, isolated):
    from mlflow import MlflowClient

    uri, res = trained
    model_uri, run_id = res.outputs["model-uri"], res.outputs["run-id"]
    ev = StageResult("evaluate", reason="1 gate(s) passed",
                     lineage={"model_uri": model_uri, "run_id": run_id})
    report.write(ev, "reports")
    fair = StageResult("check-fairness", status="failed", reason="dpd 0.3 > 0.1",
                       lineage={"run_id": "some-other-run"})
    report.write(fair, "reports")

    first = register.run(model_uri, "churn-stage", tracking_uri=uri, report_dir="reports")
    assert first.status == "passed", first.reason
    assert first.outputs["model-version"] == "1"
    assert first.outputs["registered-uri"] == "models:/churn-stage/1"
    assert first.outputs["lineage-id"] == res.outputs["lineage-id"]
    # outputs named as the next stage's options: `name` feeds evaluate/deploy --name; the
    # alias is `registered-alias`, never `alias` (MLCD_ALIAS would set deploy's --alias)
    assert first.outputs["name"] == first.outputs["model-name"] == "churn-stage"
    assert first.outputs["registered-alias"] == "candidate" and "alias" not in first.outputs
    assert first.outputs["alias-uri"] == "models:/churn-stage@candidate"
    assert first.details["created"] is True
    assert any("check-fairness.json is about run some-other-run" in w for w in first.warnings)
    second = register.run(model_uri, "churn-stage", tracking_uri=uri, report_dir="reports")
    assert second.outputs["model-version"] == "1" and second.details["created"] is False
    assert "already registered" in second.reason

    client = MlflowClient(uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'churn-stage'")
    assert [str(v.version) for v in versions] == ["1"]
    mv = client.get_model_version_by_alias("churn-stage", "candidate")
    assert str(mv.version) == "1"
    assert mv.tags["mlcd.lineage_id"] == res.outputs["lineage-id"]
    assert mv.tags["mlcd.code_version"] == "2.0.0"
    assert mv.tags["mlcd.data_version"] == "dv-9"
    assert mv.tags["mlcd.data_sha256"] == res.lineage["data_sha256"]
    assert mv.tags["mlcd.evaluate.status"] == "passed"
    assert "mlcd.check-fairness.status" not in mv.tags     # it was about another run
    assert client.get_run(run_id).data.tags["mlcd.registered"] == "churn-stage/1"


def test_register_by_logged_model_id_and_custom_alias(trained, isolated):
    from mlflow import MlflowClient

    uri, res = trained
    out = register.run(f"models:/{res.outputs['model-id']}", "churn-by-id", alias="staging-next",
                       tracking_uri=uri)
    assert out.outputs["model-version"] == "1"
    assert out.outputs["registered-alias"] == "staging-next" and "alias" not in out.outputs
    client = MlflowClient(uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias("churn-by-id", "staging-next").version) == "1"


def test_bad_register_inputs(trained, isolated):
    uri, res = trained
    with pytest.raises(ConfigError, match="run 0123456789abcdef not found"):
        register.run("runs:/0123456789abcdef/model", "x", tracking_uri=uri)
    with pytest.raises(ConfigError, match="has no model named 'nope'"):
        register.run(f"runs:/{res.outputs['run-id']}/nope", "x", tracking_uri=uri)
    with pytest.raises(ConfigError, match="register takes"):
        register.run("models:/churn/1", "x", tracking_uri=uri)
    with pytest.raises(ConfigError, match="--alias 'latest'"):
        register.run(res.outputs["model-uri"], "x", alias="latest", tracking_uri=uri)
    with pytest.raises(ConfigError, match="--name"):
        register.run(res.outputs["model-uri"], "a/b", tracking_uri=uri)


def test_a_failed_run_is_not_registered(trained, isolated):
    from mlflow import MlflowClient

    uri, res = trained
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.get_run(res.outputs["run-id"]).info.experiment_id
    failed = client.create_run(exp)
    client.set_terminated(failed.info.run_id, "FAILED")
    with pytest.raises(StageFailed, match="is FAILED, not FINISHED"):
        register.run(f"runs:/{failed.info.run_id}/model", "x", tracking_uri=uri)

"""mlcd monitor, the library: drift gates, prediction logs, accuracy decay, dispatch."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from mlcd_actions.core.errors import ConfigError, DataError, ServiceError
from mlcd_actions.core.gates import FAILED
from mlcd_actions.delivery import prediction_log as predlog
from mlcd_actions.stages import monitor
from tests.conftest import DATA
from tests.fake_forge import forge  # noqa: F401

D = DATA / "monitor"


def failed_columns(result):
    return sorted({g.metric.rsplit(".", 1)[0] for g in result.gates if g.verdict == FAILED})


def test_shifted_data_flags_exactly_the_shifted_features():
    r = monitor.run(D / "reference.csv", D / "current_shifted.csv")
    assert r.status == FAILED
    assert failed_columns(r) == ["age", "city", "income"]
    assert sorted(r.outputs["drifted-features"].split(",")) == ["age", "city", "income"]
    assert r.outputs["drift"] is True and r.outputs["retrain"] is True
    assert any(f.code == "drift.new-category" and "marseille" in f.message for f in r.findings)
    assert "approved" not in r.details["drift"]  # the label is not in the current data


def test_unshifted_resample_passes():
    r = monitor.run(D / "reference.csv", D / "current_same.csv")
    assert r.status == "passed", r.reason
    assert r.outputs["drift"] is False and r.outputs["drifted-features"] == ""
    # the default gates: a sample-size aware test per feature (KS for numeric, chi-square
    # for categorical), no fixed PSI/JS cut-off
    assert {g.metric for g in r.gates} >= {"age.ks", "city.chi2_pvalue"}
    assert not any(g.metric.endswith((".psi", ".js")) for g in r.gates)


def test_per_feature_threshold_overrides_global():
    r = monitor.run(D / "reference.csv", D / "current_shifted.csv",
                    thresholds=["psi<=0.2", "age.psi<=100", "js<=0.1"])
    assert failed_columns(r) == ["city", "income"]
    assert next(g for g in r.gates if g.metric == "age.psi").threshold == "<= 100"


def test_only_scoped_thresholds_keep_the_defaults():
    r = monitor.run(D / "reference.csv", D / "current_same.csv", thresholds=["score.ks<=0.5"])
    metrics = {g.metric for g in r.gates}
    assert "score.ks" in metrics and "age.ks" in metrics
    # the scoped threshold replaces the default test of that column
    assert [g.threshold for g in r.gates if g.metric == "score.ks"] == ["<= 0.5"]


@pytest.mark.parametrize("spec,match", [("bogus<=1", "unknown drift metric"),
                                        ("nope.psi<=1", "no compared column 'nope'"),
                                        ("city.psi<=1", "does not apply to categorical")])
def test_bad_thresholds_are_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        monitor.run(D / "reference.csv", D / "current_same.csv", thresholds=[spec])


def test_prediction_log_is_read_and_flattened():
    feats, meta = predlog.read(D / "predictions.jsonl")
    assert predlog.is_prediction_log(D / "predictions.jsonl")
    assert not predlog.is_prediction_log(D / "reference.csv")
    assert list(feats.columns) == ["age", "income", "score", "tenure", "city", "plan",
                                   "prediction"]
    assert len(feats) == 400 and {"request_id", "row", "model_version"} <= set(meta.columns)


def test_prediction_log_with_mixed_types_falls_back_and_names_bad_lines(tmp_path):
    lines = (D / "predictions.jsonl").read_text().splitlines()[:20]
    rec = json.loads(lines[3])
    rec["proba"] = [0.1, 0.9]
    lines[3] = json.dumps(rec)
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    feats, _ = predlog.read(tmp_path / "log.jsonl")
    assert len(feats) == 20 and feats["age"].dtype.kind == "f"
    (tmp_path / "bad.jsonl").write_text("\n".join(lines[:5] + ["{not json"]) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:6: not valid JSON"):
        predlog.read(tmp_path / "bad.jsonl")


def expected_accuracy():
    log = pd.read_json(D / "predictions.jsonl", lines=True)
    labels = pd.read_csv(D / "labels.csv")
    joined = log.merge(labels, on=["request_id", "row"])
    return float((joined["prediction"] == joined["label"]).mean()), len(joined)


def test_accuracy_decay_from_labels_joined_to_the_log():
    acc, n = expected_accuracy()
    r = monitor.run(D / "reference.csv", D / "predictions.jsonl", labels=str(D / "labels.csv"),
                    baseline_metrics=D / "baseline.json", max_decay=["accuracy=0.05"])
    gate = next(g for g in r.gates if g.metric == "accuracy")
    assert gate.value == pytest.approx(acc) and gate.baseline == 0.9
    assert gate.verdict == FAILED and gate.delta == pytest.approx(acc - 0.9)
    assert r.details["accuracy"]["labelled_rows"] == n
    assert r.outputs["accuracy-decay"] is True and r.outputs["retrain"] is True
    assert r.outputs["current-source"] == "prediction-log"


def test_accuracy_within_limit_passes(tmp_path):
    acc, _ = expected_accuracy()
    (tmp_path / "b.json").write_text(json.dumps({"metrics": {"accuracy": acc + 0.01}}))
    r = monitor.run(D / "reference.csv", D / "predictions.jsonl", labels=str(D / "labels.csv"),
                    baseline_metrics=tmp_path / "b.json")
    gate = next(g for g in r.gates if g.metric == "accuracy")
    assert gate.verdict == "passed" and gate.threshold == "max drop 5%"
    assert r.outputs["accuracy-decay"] is False


def test_labels_that_match_nothing_are_an_error(tmp_path):
    pd.DataFrame({"request_id": ["x"], "row": [0], "label": [1]}).to_csv(tmp_path / "l.csv",
                                                                         index=False)
    with pytest.raises(DataError, match="no label matches a prediction on request_id \\+ row"):
        monitor.run(D / "reference.csv", D / "predictions.jsonl", labels=str(tmp_path / "l.csv"))


def test_label_column_of_the_current_dataset(tmp_path):
    cur = pd.read_csv(D / "reference.csv")
    cur["prediction"] = cur["approved"]
    cur.loc[:99, "prediction"] = 1 - cur.loc[:99, "approved"]
    cur.to_csv(tmp_path / "cur.csv", index=False)
    r = monitor.run(D / "reference.csv", tmp_path / "cur.csv", labels="approved",
                    baseline_metrics=D / "baseline.json")
    assert r.metrics["current_accuracy"] == pytest.approx(700 / 800)
    assert "approved" not in r.details["drift"]


def test_empty_current_is_a_data_error(tmp_path):
    (tmp_path / "e.csv").write_text("age,income\n")
    with pytest.raises(DataError, match="empty"):
        monitor.run(D / "reference.csv", tmp_path / "e.csv")


def test_dispatch_and_issue_on_drift_github(forge, monkeypatch):  # noqa: F811
    for k, v in forge.github_env().items():
        monkeypatch.setenv(k, v)
    kw = dict(dispatch="github", open_issue=True, dispatch_inputs=["model=credit"])
    r1 = monitor.run(D / "reference.csv", D / "current_shifted.csv", **kw)
    r2 = monitor.run(D / "reference.csv", D / "current_shifted.csv", **kw)
    assert r1.outputs["dispatched"] is True and r2.details["issue"]["action"] == "updated"
    assert len(forge.state.issues) == 1
    issue = forge.state.issues[1]
    assert monitor.INCIDENT_MARKER in issue["body"] and "age.ks" in issue["body"]
    d = forge.state.dispatches[0]
    assert d["event_type"] == "mlcd-retrain" and d["client_payload"]["model"] == "credit"
    assert "age" in d["client_payload"]["drifted_features"]


def test_no_dispatch_without_drift(forge, monkeypatch):  # noqa: F811
    for k, v in forge.github_env().items():
        monkeypatch.setenv(k, v)
    r = monitor.run(D / "reference.csv", D / "current_same.csv", dispatch="github",
                    open_issue=True)
    assert r.outputs["dispatched"] is False and forge.state.requests == []


def test_gitlab_trigger_and_500(forge, monkeypatch):  # noqa: F811
    for k, v in forge.gitlab_env().items():
        monkeypatch.setenv(k, v)
    r = monitor.run(D / "reference.csv", D / "current_shifted.csv", dispatch="gitlab",
                    ref="main")
    assert r.details["dispatch"]["pipeline_id"]
    assert forge.state.pipelines[0]["variables"]["MLCD_RETRAIN"] == "true"
    forge.state.fail_status = 500
    with pytest.raises(ServiceError, match="HTTP 500"):
        monitor.run(D / "reference.csv", D / "current_shifted.csv", dispatch="gitlab")


def test_plots_are_written(tmp_path):
    r = monitor.run(D / "reference.csv", D / "current_shifted.csv", plots_dir=tmp_path / "p",
                    max_plots=3)
    pngs = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert len(pngs) == 3 and set(pngs) == {"age.png", "income.png", "city.png"}
    assert all((tmp_path / "p" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert len(r.artifacts) == 3


def test_directory_of_logs(tmp_path):
    lines = (D / "predictions.jsonl").read_text().splitlines()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_text("\n".join(lines[:200]) + "\n")
    (tmp_path / "logs" / "b.jsonl").write_text("\n".join(lines[200:]) + "\n")
    shutil.copy(D / "labels.csv", tmp_path / "labels.csv")
    r = monitor.run(D / "reference.csv", tmp_path / "logs", labels=str(tmp_path / "labels.csv"))
    assert r.metrics["current_rows"] == 400
    assert r.details["accuracy"]["labelled_rows"] == expected_accuracy()[1]


def test_baseline_from_the_mlflow_run_behind_the_model(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri, uri)
    exp = client.create_experiment("credit", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "test_accuracy", 0.95)
    client.log_metric(run.info.run_id, "f1", 0.9)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("credit")
    mv = client.create_model_version("credit", f"runs:/{run.info.run_id}/model",
                                     run_id=run.info.run_id)
    client.set_registered_model_alias("credit", "champion", mv.version)
    for model_uri in ("models:/credit@champion", f"models:/credit/{mv.version}",
                      f"runs:/{run.info.run_id}/model"):
        r = monitor.run(D / "reference.csv", D / "predictions.jsonl",
                        labels=str(D / "labels.csv"), model_uri=model_uri, tracking_uri=uri)
        gate = next(g for g in r.gates if g.metric == "accuracy")
        assert gate.baseline == 0.95 and gate.verdict == FAILED, model_uri
    with pytest.raises(ConfigError, match="models:/<name>/<version>"):
        monitor.run(D / "reference.csv", D / "predictions.jsonl", labels=str(D / "labels.csv"),
                    model_uri="credit", tracking_uri=uri)


def _frame(rng, n, shift=0.0):
    import numpy as np

    cols = {f"x{i}": rng.normal(shift if i == 0 else 0.0, 1.0, n) for i in range(12)}
    cols["segment"] = rng.choice(np.asarray(["a", "b", "c", "rare"]), n, p=[.5, .3, .18, .02])
    cols["count"] = rng.poisson(3, n)
    return pd.DataFrame(cols)


def test_default_gates_account_for_the_sample_size(tmp_path):
    # issue 13 §14: a 36-row test split against its 144-row training split, 14 features,
    # same distribution: the old psi<=0.2 default flagged most of them; the default tests
    # flag none, on each of several resamples
    import numpy as np

    rng = np.random.default_rng(3)
    alarms = 0
    for i in range(5):
        _frame(rng, 144).to_csv(tmp_path / f"ref{i}.csv", index=False)
        _frame(rng, 36).to_csv(tmp_path / f"cur{i}.csv", index=False)
        r = monitor.run(tmp_path / f"ref{i}.csv", tmp_path / f"cur{i}.csv", max_plots=0)
        alarms += r.outputs["drift"]
        ks = next(g for g in r.gates if g.metric == "x0.ks")
        assert "critical value at alpha 0.05/14" in ks.message
    assert alarms <= 1
    assert r.details["bins"] == 7  # PSI bins: 36 rows // 5 per bin
    # a real shift (one standard deviation of one feature) on 1000 rows is caught
    _frame(rng, 4000).to_csv(tmp_path / "ref.csv", index=False)
    _frame(rng, 1000, shift=1.0).to_csv(tmp_path / "cur.csv", index=False)
    r = monitor.run(tmp_path / "ref.csv", tmp_path / "cur.csv", max_plots=0)
    assert r.status == "failed" and r.outputs["drifted-features"] == "x0"
    assert r.gates[0].metric == "x0.ks" and r.gates[0].verdict == "failed"  # failed first


def test_chi2_pools_rare_categories():
    import numpy as np

    from mlcd_actions.data.drift import _chi2_homogeneity

    # two rare categories seen once each: without pooling they alone make p tiny
    r = np.array([50.0, 48.0, 1.0, 0.0])
    c = np.array([12.0, 11.0, 0.0, 1.0])
    stat, p = _chi2_homogeneity(r, c)
    assert p > 0.05

"""mlcd_actions.stages.evaluate.run: metric definitions, slices, plots, baseline, run logging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.stages import evaluate
from tests.models.test_loading import DATA, LABEL, PIP
from tests.models.test_loading import eval_store as eval_store  # noqa: F401 - shared fixture
from tests.models.test_loading import store as shared_store

TEST = DATA / "test.csv"
PNG = b"\x89PNG\r\n\x1a\n"
store = shared_store  # the fixture, under its own name


@pytest.fixture(scope="module")
def multiclass_model(tmp_path_factory):
    """A 3-class model saved as a local MLflow model directory, and its test set."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    n = 240
    x = pd.DataFrame({"f1": rng.normal(size=n), "f2": rng.normal(size=n)})
    y = np.select([x.f1 > 0.5, x.f2 > 0], ["high", "mid"], "low")
    y = np.where(rng.random(n) < 0.15, rng.choice(["low", "mid", "high"], n), y)
    model = LogisticRegression().fit(x[:160], y[:160])
    path = tmp_path_factory.mktemp("mc") / "model"
    mlflow.sklearn.save_model(model, path, pip_requirements=PIP)
    test = path.parent / "test.csv"
    x[160:].assign(kind=y[160:]).to_csv(test, index=False)
    return path, test, model


def test_classification_metrics_slices_plots_and_chart(store, tmp_path):
    res = evaluate.run("models:/credit/1", TEST, LABEL, thresholds=["accuracy>=0.8"],
                       slices=["sex"], report_dir=tmp_path)
    assert res.status == "passed", res.reason
    df = pd.read_csv(TEST)
    from mlcd_actions.models import loading as models

    m = models.load("models:/credit/1")
    pred = m.predict(models.prepare_features(df, LABEL, m))
    proba = m.predict_proba(models.prepare_features(df, LABEL, m))[:, 1]
    y = df[LABEL].to_numpy()
    assert res.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert res.metrics["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert res.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba))
    assert res.metrics["log_loss"] == pytest.approx(skm.log_loss(y, np.c_[1 - proba, proba]))
    sl = res.details["slices"]["sex"]["slices"]
    assert sum(s["rows"] for s in sl) == len(df)
    for s in sl:
        mask = (df["sex"] == s["value"]).to_numpy()
        assert s["accuracy"] == pytest.approx(skm.accuracy_score(y[mask], pred[mask]))
    names = sorted(Path(a).name for a in res.artifacts)
    assert names == ["evaluate-confusion-matrix.png", "evaluate-pr.png", "evaluate-roc.png"]
    assert all(Path(a).read_bytes()[:8] == PNG for a in res.artifacts)
    chart = "\n".join(res.markdown)
    assert "```mermaid\nxychart-beta" in chart and 'x-axis ["accuracy"' in chart


def test_regression_metrics_and_residual_plot(store, tmp_path):
    res = evaluate.run(store["regressor"]["runs"], DATA / "regression.csv", "target",
                       thresholds=["rmse<=0.5", "r2>=0.95"], report_dir=tmp_path)
    assert res.status == "passed", res.reason
    assert res.details["task"] == "regression"
    assert set(res.metrics) == {"rmse", "mae", "r2"}
    assert [Path(a).name for a in res.artifacts] == ["evaluate-residuals.png"]
    fail = evaluate.run(store["regressor"]["runs"], DATA / "regression.csv", "target",
                        thresholds=["rmse<=0.01"], report_dir=tmp_path, plot=False)
    assert fail.status == "failed" and "rmse" in fail.reason


def test_metrics_logged_to_the_models_run(store, tmp_path):
    from mlflow import MlflowClient

    res = evaluate.run(store["good"]["runs"], TEST, LABEL, thresholds=["f1>=0.5"],
                       report_dir=tmp_path, plot=False)
    logged = MlflowClient(store["tracking_uri"]).get_run(store["good"]["run_id"]).data.metrics
    assert logged["eval_accuracy"] == pytest.approx(res.metrics["accuracy"])
    assert logged["eval_roc_auc"] == pytest.approx(res.metrics["roc_auc"])
    assert res.details["logged_to_run"] == store["good"]["run_id"]


def test_gate_on_a_metric_that_cannot_be_computed_fails(store, tmp_path):
    res = evaluate.run(store["pyfunc"]["runs"], TEST, LABEL, thresholds=["roc_auc>=0.7"],
                       report_dir=tmp_path, plot=False)
    assert res.metrics["roc_auc"] is None and res.metrics["accuracy"] is not None
    assert res.status == "failed" and res.gates[0].verdict == "failed"
    assert res.reason.startswith("roc_auc could not be computed (model runs:/")
    assert "has no predict_proba); gate 'roc_auc>=0.7' cannot be checked" in res.reason
    assert res.outputs["passed"] is False
    assert any("--allow-skipped-gates" in w for w in res.warnings)


def test_allow_skipped_gates_skips_probability_gates_loudly(store, tmp_path):
    res = evaluate.run(store["pyfunc"]["runs"], TEST, LABEL, thresholds=["roc_auc>=0.7"],
                       report_dir=tmp_path, plot=False, allow_skipped_gates=True, min_lifts=[])
    assert res.status == "passed" and res.gates[0].verdict == "skipped"
    assert res.reason.startswith("no gate checked")
    assert any("nothing was verified" in w for w in res.warnings)
    assert any("gate on roc_auc skipped (--allow-skipped-gates): roc_auc could not be "
               "computed" in w for w in res.warnings)


def test_max_drop_fails_when_the_baselines_metric_cannot_be_computed(store, tmp_path):
    res = evaluate.run("models:/credit/1", TEST, LABEL, baseline=store["pyfunc"]["runs"],
                       max_drops=["roc_auc=0.01"], report_dir=tmp_path, plot=False, min_lifts=[])
    assert res.status == "failed" and res.gates[0].verdict == "failed"
    assert res.reason.startswith("the baseline's roc_auc could not be computed (model runs:/")


def test_explicit_baseline_diff_table(store, tmp_path):
    res = evaluate.run("models:/credit/1", TEST, LABEL, baseline="models:/credit/2",
                       max_drops=["accuracy=0.01"], report_dir=tmp_path, plot=False)
    assert res.status == "passed"
    table = next(t for t in res.tables if t.title.startswith("metrics: "))
    assert table.title == "metrics: credit v1 vs baseline credit v2"
    assert res.outputs["baseline-source"] == "baseline"
    rows = {r[0]: r for r in table.rows}
    assert rows["accuracy"][5] == "better" and rows["log_loss"][4] == "lower"
    assert res.outputs["baseline-uri"] == "models:/credit/2"


def test_multiclass_macro_averaging(multiclass_model, tmp_path):
    path, test, model = multiclass_model
    res = evaluate.run(str(path), test, "kind", thresholds=["f1>=0.1"], report_dir=tmp_path)
    df = pd.read_csv(test)
    x, y = df[["f1", "f2"]], df["kind"].to_numpy()
    pred = model.predict(x)
    assert res.metrics["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert res.metrics["precision"] == pytest.approx(
        skm.precision_score(y, pred, average="macro", zero_division=0))
    assert res.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, model.predict_proba(x), multi_class="ovr", labels=model.classes_))
    assert res.details["classes"] == ["high", "low", "mid"]
    assert "evaluate-roc.png" in {Path(a).name for a in res.artifacts}


def test_unknown_threshold_metric_is_config_error(store, tmp_path):
    with pytest.raises(ConfigError, match="unknown metric 'rmse'"):
        evaluate.run("models:/credit/1", TEST, LABEL, thresholds=["rmse<=1"],
                     report_dir=tmp_path)


def test_slice_metrics_largest_first_with_missing_slice_and_cap():
    from mlcd_actions.models.metrics import slice_metrics

    values = pd.Series(["a", "b", None, "a", "c", None, "a"])
    y = np.array([1, 0, 1, 1, 0, 0, 1])
    p = np.array([1, 1, 1, 0, 0, 0, 1])
    rows, left_out = slice_metrics("classification", values, y, p, None, [0, 1], 1,
                                   max_values=2)
    assert [(r["value"], r["rows"]) for r in rows] == [("a", 3), ("(missing)", 2)]
    assert rows[0]["accuracy"] == pytest.approx(2 / 3) and rows[1]["accuracy"] == 1.0
    assert left_out == 2


def test_label_values_the_model_never_learned_are_warned(store, tmp_path):
    df = pd.read_csv(TEST)
    df.loc[:4, LABEL] = 2
    df.to_csv(tmp_path / "t.csv", index=False)
    res = evaluate.run("models:/credit/1", tmp_path / "t.csv", LABEL,
                       thresholds=["accuracy>=0"], report_dir=tmp_path, plot=False)
    assert any("never learned: 2" in w for w in res.warnings)
    assert res.metrics["roc_auc"] is None and res.metrics["accuracy"] < 1

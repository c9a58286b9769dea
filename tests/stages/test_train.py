"""``mlcd_actions.stages.train`` on the embedded SQLite store (the default), real child
processes, real MLflow artifacts."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from mlcd_actions.ci.lineage import lineage_id
from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.stages import train as stage
from mlcd_actions.training.estimators import BUILTINS

DATA = Path(__file__).resolve().parents[1] / "data" / "train"


def _client(uri=None):
    from mlflow import MlflowClient

    from mlcd_actions.models import tracking

    return MlflowClient(uri or tracking.default_tracking_uri())


def _artifact_json(uri: str, run_id: str, path: str) -> dict:
    import mlflow

    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                                tracking_uri=uri)
    return json.loads(Path(local).read_text())


@pytest.fixture(scope="session")
def shared_db(tmp_path_factory):
    """One embedded SQLite store for the tests that do not test the default location
    (creating the MLflow tables costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-sqlite') / 'mlflow.db'}"


@pytest.fixture
def user_code(isolated):
    shutil.copy(DATA / "user_model.py", isolated / "user_model.py")
    return isolated


@pytest.fixture
def webhook():
    """A Slack-style webhook on loopback that records every POST body."""
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/secret", received
    finally:
        server.shutdown()
        server.server_close()


def test_builtin_regressor_on_the_default_sqlite_store(isolated):
    """Default store, built-in estimator on raw columns (NaN, strings), lineage from the
    build-training report, metrics, golden samples, signature, explicit requirements."""
    import mlflow
    import sklearn

    from mlcd_actions.core import reporting as report
    from mlcd_actions.core.files import sha256_file
    from mlcd_actions.core.results import StageResult

    report.write(StageResult("build-training", outputs={"version": "1.4.0-beta.7"}),
                 ".mlcd/reports")
    res = stage.run(str(DATA / "reg_train.parquet"), label="price", estimator="ridge",
                    test=str(DATA / "reg_test.parquet"), data_version="dv-3",
                    params_file=None, echo_log=False)
    assert res.status == "passed", res.reason
    run_id = res.outputs["run-id"]
    assert res.outputs["model-uri"] == f"runs:/{run_id}/model"
    assert Path(".mlcd/mlflow.db").is_file()          # the embedded default
    sha = sha256_file(DATA / "reg_train.parquet")
    assert res.outputs["lineage-id"] == lineage_id(sha, None, "1.4.0-beta.7")
    assert res.lineage["code_version"] == "1.4.0-beta.7"
    assert res.lineage["data_version"] == "dv-3"
    assert res.outputs["task"] == "regression"

    uri = mlflow.get_tracking_uri()
    run = _client(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlcd.lineage_id"] == res.outputs["lineage-id"]
    assert tags["mlcd.data_sha256"] == sha
    assert tags["mlcd.code_version"] == "1.4.0-beta.7"
    assert tags["mlcd.data_version"] == "dv-3"
    assert run.data.params["estimator"] == "ridge"
    assert run.data.metrics["test_rmse"] > 0
    assert "train_r2" in run.data.metrics and "mlcd_heartbeat" in run.data.metrics

    info = mlflow.models.get_model_info(res.outputs["model-uri"])
    assert info.signature is not None
    assert [c["name"] for c in info.signature.inputs.to_dict()] == \
        ["age", "income", "city", "tenure"]
    assert info.saved_input_example_info is not None
    meta = info.metadata["mlcd"]
    assert meta["task"] == "regression" and meta["label"] == "price"
    assert meta["features"] == ["age", "income", "city", "tenure"]
    local = Path(mlflow.artifacts.download_artifacts(res.outputs["model-uri"]))
    reqs = (local / "requirements.txt").read_text().split()
    assert f"scikit-learn=={sklearn.__version__}" in reqs

    golden = _artifact_json(uri, run_id, "golden/samples.json")
    assert golden["rows"] == 30 and len(golden["inputs"]) == 30 == len(golden["predictions"])
    assert golden["probabilities"] is None and golden["label"] == "price"
    model = mlflow.pyfunc.load_model(res.outputs["model-uri"])
    import pandas as pd

    again = model.predict(pd.DataFrame(golden["inputs"]))
    assert list(again) == pytest.approx(golden["predictions"])
    log_text = Path(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="logs/train.log", tracking_uri=uri)).read_text()
    assert "fitting built-in ridge" in log_text


def test_entrypoint_non_sklearn_model_is_logged_as_pyfunc(user_code, shared_db):
    import subprocess

    import mlflow

    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "c1"], check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    uri = shared_db
    res = stage.run(str(DATA / "reg_train.parquet"), label="price",
                    entrypoint="user_model:mean_model", tracking_uri=uri, echo_log=False)
    assert res.status == "passed", res.reason
    assert res.lineage["git_sha"] == sha
    assert _client(uri).get_run(res.outputs["run-id"]).data.tags[
        "mlflow.source.git.commit"] == sha
    assert res.details["flavor"] == "python_function"
    # the user's module ships with the model: it loads where user_model is not importable
    model_dir = Path(mlflow.artifacts.download_artifacts(res.outputs["model-uri"],
                                                         tracking_uri=uri))
    assert list(model_dir.rglob("user_model.py"))


def test_command_saving_a_pyfunc_model_is_shipped_as_an_artifact(isolated, shared_db,
                                                                  monkeypatch):
    import mlflow
    import pandas as pd

    shutil.copy(DATA / "train_script.py", "train.py")
    monkeypatch.setenv("MODE", "pyfunc")
    res = stage.run(str(DATA / "reg_train.parquet"), label="price", command="python train.py",
                    test=str(DATA / "reg_test.parquet"), tracking_uri=shared_db,
                    echo_log=False)
    assert res.status == "passed", res.reason
    assert res.details["flavor"] == "python_function"
    model = mlflow.pyfunc.load_model(res.outputs["model-uri"])
    golden = _artifact_json(shared_db, res.outputs["run-id"], "golden/samples.json")
    again = model.predict(pd.DataFrame(golden["inputs"]))
    assert list(again) == pytest.approx(golden["predictions"])
    assert mlflow.models.get_model_info(res.outputs["model-uri"]).signature is not None


def test_a_training_function_that_raises_fails_with_its_traceback(user_code, webhook,
                                                                  shared_db):
    url, received = webhook
    res = stage.run(str(DATA / "clf_train.parquet"), label="approved",
                    entrypoint="user_model:broken", alert_webhook=url, echo_log=False,
                    tracking_uri=shared_db)
    assert res.status == "failed"
    assert res.code() == 1
    assert "user_model:broken raised ValueError: cannot train on 90 rows" in res.reason
    md = "\n".join(res.markdown)
    assert "Traceback" in md and "in broken" in md and "column 'age' looks wrong" in md
    run = _client(shared_db).get_run(res.outputs["run-id"])
    assert run.info.status == "FAILED"
    assert "ValueError" in run.data.tags["mlcd.failure"]
    assert len(received) == 1 and "cannot train on 90 rows" in received[0]["text"]
    assert "secret" not in json.dumps(res.warnings)


def test_timeout_stops_training_beats_heartbeats_and_alerts(user_code, webhook, shared_db):
    url, received = webhook
    res = stage.run(str(DATA / "clf_train.parquet"), label="approved",
                    entrypoint="user_model:slow", timeout=8, log_interval=1,
                    alert_webhook=url, echo_log=False, tracking_uri=shared_db)
    assert res.status == "failed"
    assert "timed out after 8s" in res.reason
    client = _client(shared_db)
    run = client.get_run(res.outputs["run-id"])
    assert run.info.status == "FAILED"
    beats = client.get_metric_history(run.info.run_id, "mlcd_heartbeat")
    assert len(beats) >= 2 and max(b.step for b in beats) >= 2
    import mlflow

    log_text = Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="logs/train.log",
        tracking_uri=shared_db)).read_text()
    assert "user: starting a long fit" in log_text
    assert len(received) == 1 and "timed out" in received[0]["text"]


@pytest.mark.parametrize("kwargs, error, text", [
    ({"label": "nope"}, DataError, "label column 'nope' not found"),
    ({"label": "approved", "entrypoint": "a:b", "command": "python x.py"}, ConfigError,
     "not both"),
    ({"label": "approved", "entrypoint": "no_colon"}, ConfigError, "module:function"),
    ({"label": "approved", "estimator": "ridge"}, ConfigError, "regression estimator"),
    ({"label": "approved", "estimator": "xgb"}, ConfigError, "not a built-in"),
    ({"label": None}, ConfigError, "--label is required"),
])
def test_bad_options_fail_before_any_run(isolated, kwargs, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(")):
        stage.run(str(DATA / "clf_train.parquet"), **kwargs)
    assert not Path(".mlcd/mlflow.db").exists()


def test_bad_training_data(isolated):
    import pandas as pd

    pd.DataFrame({"x": [1, 2, 3], "y": ["a", "a", "a"]}).to_parquet("one.parquet")
    with pytest.raises(DataError, match="one class only"):
        stage.run("one.parquet", label="y", task="classification")
    pd.DataFrame({"x": [1.0, 2, 3], "y": [1.0, None, 2.0]}).to_parquet("nan.parquet")
    with pytest.raises(DataError, match=r"1 missing value\(s\), first at row 1"):
        stage.run("nan.parquet", label="y")
    with pytest.raises(DataError, match="no such file"):
        stage.run("missing.parquet", label="y")
    Path("params.yaml").write_text("C: [1, 2\n")
    with pytest.raises(ConfigError, match="params.yaml: cannot parse params"):
        stage.run(str(DATA / "clf_train.parquet"), label="approved", params_file="params.yaml")


def test_task_inference():
    import pandas as pd

    from mlcd_actions.training.estimators import infer_task

    assert infer_task(pd.Series(["a", "b"])) == "classification"
    assert infer_task(pd.Series([0, 1, 1])) == "classification"
    assert infer_task(pd.Series([0.0, 1.0, 1.0])) == "classification"
    assert infer_task(pd.Series([0.5, 1.2, 3.3])) == "regression"
    assert infer_task(pd.Series(range(100))) == "regression"


def test_pip_requirements_are_pinned_and_pruned():
    import importlib.metadata as md

    from mlcd_actions.training.requirements import pip_requirements

    reqs = pip_requirements(["sklearn", "scipy", "joblib", "not_a_module_xyz", "json"],
                            extra=["lightgbm>=4"])
    assert f"scikit-learn=={md.version('scikit-learn')}" in reqs
    assert f"pandas=={md.version('pandas')}" in reqs
    assert not any(r.lower().startswith(("scipy", "joblib")) for r in reqs)  # via sklearn
    assert not any("not_a_module" in r or r.startswith("json") for r in reqs)
    assert reqs[-1] == "lightgbm>=4"


def _sklearn_metrics(y_true, y_pred, proba, classes):
    """The classification metrics as scikit-learn's own functions give them, one call each
    on the original values (what train logged before coding text labels)."""
    import numpy as np
    from sklearn import metrics as m

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(classes) if classes is not None else sorted(set(y_true.tolist()))
    binary = len(labels) == 2
    kw = ({"average": "binary", "pos_label": labels[1]} if binary
          else {"average": "macro", "labels": labels})
    out = {"accuracy": m.accuracy_score(y_true, y_pred),
           "f1": m.f1_score(y_true, y_pred, zero_division=0, **kw),
           "precision": m.precision_score(y_true, y_pred, zero_division=0, **kw),
           "recall": m.recall_score(y_true, y_pred, zero_division=0, **kw)}
    if proba is not None and binary and len(set(y_true.tolist())) == 2:
        out["roc_auc"] = m.roc_auc_score(y_true == labels[1], proba[:, 1])
    return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize("case", ["binary", "multiclass", "unseen", "one-class", "ints",
                                  "unicode", "no-classes", "mixed"])
def test_classification_metrics_equal_scikit_learns_own_calls(case):
    """Text labels are scored as integer codes, precision/recall/F1 in one call: every
    value is exactly what the separate scikit-learn calls give on the original labels."""
    import numpy as np

    rng = np.random.default_rng(3)
    names = {"binary": ["no", "yes"], "multiclass": ["b", "a", "c", "d"]}
    classes = names.get(case, ["no", "yes"])
    y_true = rng.choice(classes, 500).astype(object)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.choice(classes, 500)).astype(object)
    proba = None
    if len(classes) == 2:
        p1 = rng.random(500)
        proba = np.column_stack([1 - p1, p1])
    if case == "unseen":  # a test label the model never saw, predicted never
        y_true[:7] = "zzz"
        classes, proba = ["a", "b", "c", "d", "no", "yes"], None
        y_true[7:20] = "a"
    elif case == "one-class":
        y_true[:] = "yes"
    elif case == "ints":
        y_true, y_pred = (y_true == "yes").astype(int), (y_pred == "yes").astype(int)
        classes = [0, 1]
    elif case == "unicode":
        y_true, y_pred = y_true.astype(str), y_pred.astype(str)
    elif case == "no-classes":
        classes = None
    elif case == "mixed":  # not all text: scikit-learn's own path, unchanged
        y_true[0] = 5
    if case == "mixed":  # the same error as scikit-learn's own calls
        with pytest.raises(Exception) as theirs:
            _sklearn_metrics(y_true, y_pred, proba, classes)
        with pytest.raises(theirs.type):
            stage._metrics("classification", y_true, y_pred, proba, classes)
        return
    labels = list(classes or sorted(set(y_true.tolist())))
    coded = stage._label_codes(np.asarray(y_true), np.asarray(y_pred), labels)
    assert (coded is None) == (case == "ints")
    got = stage._metrics("classification", y_true, y_pred, proba, classes)
    assert got == _sklearn_metrics(y_true, y_pred, proba, classes)
    assert set(got) >= {"accuracy", "f1", "precision", "recall"}



@pytest.mark.parametrize("estimator", ["logistic_regression", "random_forest_classifier",
                                       "gradient_boosting_classifier", "ridge",
                                       "random_forest_regressor", "overridden-forest",
                                       "bare-forest", "multiclass-forest"])
def test_predictions_equal_the_models_own_predict_and_predict_proba(estimator):
    """The Pipeline's steps run once for both calls and a forest's predictions come from its
    probabilities: bit for bit what ``model.predict`` and ``model.predict_proba`` give."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from mlcd_actions.training import estimators

    rng = np.random.default_rng(5)
    n = 600
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.choice(["x", "y", "z", None], n)})
    X.loc[::17, "a"] = np.nan
    y = np.where(X["b"].to_numpy() + rng.normal(0, 1, n) > 0, "yes", "no")
    if estimator == "overridden-forest":
        class Flipped(RandomForestClassifier):
            def predict(self, X):  # noqa: D102 - the opposite class
                return self.classes_.take(np.argmin(self.predict_proba(X), axis=1))

        model = Flipped(n_estimators=10, random_state=0).fit(X[["a", "b"]].fillna(0), y)
        X = X[["a", "b"]].fillna(0)
    elif estimator in ("bare-forest", "multiclass-forest"):
        if estimator == "multiclass-forest":
            y = rng.choice(["p", "q", "r"], n)
        X = X[["a", "b"]].fillna(0)
        model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    else:
        if estimators.BUILTINS[estimator][0] == "regression":
            y = X["b"].to_numpy() * 2 + rng.normal(size=n)
        model = estimators.build(estimator, X).fit(X, y)
    preds, proba = stage._predict(model, X, "the model")
    assert np.array_equal(preds, model.predict(X))
    assert preds.dtype == model.predict(X).dtype
    if hasattr(model, "predict_proba") and estimator not in ("ridge",
                                                             "random_forest_regressor"):
        assert np.array_equal(proba, model.predict_proba(X))
    else:
        assert proba is None


@pytest.mark.parametrize("estimator", sorted(BUILTINS))
def test_scoring_a_built_in_model_leaves_its_pickle_unchanged(estimator):
    """A built-in model is scored while its directory is pickled and uploaded: predicting
    must change nothing in it (same pickle bytes before and after)."""
    import pickle

    import cloudpickle
    import numpy as np
    import pandas as pd

    from mlcd_actions.training import estimators

    rng = np.random.default_rng(9)
    n = 300
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.choice(["x", "y", None], n)})
    X.loc[::11, "b"] = np.nan
    regression = estimators.BUILTINS[estimator][0] == "regression"
    y = X["a"] * 3 + rng.normal(size=n) if regression else np.where(X["a"] > 0, "p", "q")
    model = estimators.build(estimator, X).fit(X, y)
    before = cloudpickle.dumps(model, protocol=pickle.DEFAULT_PROTOCOL)
    trainer = stage._Trainer(mode="builtin", label="y", task="regression" if regression
                             else "classification", estimator=estimator, entrypoint=None,
                             command=None, user_params={}, golden_rows=5,
                             serialization_format="cloudpickle", extra_pip_requirements=[])
    frame = X.assign(y=y)
    scorer = stage._Scorer(stage._Trained(model=model), None, trainer, frame, frame, X,
                           X.head(5))
    scores = scorer.signature()
    scorer.rest(scores)
    assert scores.metrics and scores.gold_pred is not None
    assert cloudpickle.dumps(model, protocol=pickle.DEFAULT_PROTOCOL) == before

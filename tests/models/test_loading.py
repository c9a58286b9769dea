"""mlcd_actions.models.loading: loading every kind of MLflow model URI, features, shapes, errors.

This module also builds the MLflow store the evaluate / check-fairness tests share
(``eval_store``): tiny scikit-learn models logged into a SQLite tracking store in the
session's tmp dir, registered as ``credit`` v1 (alias ``champion``) and v2 (worse).
Other test modules import the fixture from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.core.errors import ConfigError, DataError, ServiceError, StageFailed
from mlcd_actions.models import loading as models

DATA = Path(__file__).parents[1] / "data" / "evaluate"
LABEL = "approved"
PIP = ["scikit-learn", "pandas"]


class ShapeModel:
    """A pyfunc model (no sklearn flavor): ``extra`` rows too many when asked to misbehave."""

    def __init__(self, extra: int = 0) -> None:
        self.extra = extra

    def load_context(self, context) -> None:  # mlflow PythonModel protocol
        pass

    def predict(self, context, model_input, params=None):
        pred = (model_input["income"].to_numpy() > 50).astype(int)
        return np.concatenate([pred, pred[: self.extra]]) if self.extra else pred


def _python_model(extra: int):
    import mlflow.pyfunc

    class Wrapped(mlflow.pyfunc.PythonModel):
        def __init__(self) -> None:
            self.inner = ShapeModel(extra)

        def predict(self, context, model_input, params=None):
            return self.inner.predict(context, model_input, params)

    return Wrapped()


def _clf_pipeline(numeric: list[str], categorical: list[str] = ()):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if numeric:
        parts.append(("num", StandardScaler(), list(numeric)))
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), list(categorical)))
    return Pipeline([("cols", ColumnTransformer(parts)), ("clf", LogisticRegression())])


def build_store(base: Path) -> dict:
    """Log the test models into ``base``; returns URIs (written to ``base/info.json``)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    base.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{base / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.create_experiment("eval-tests", artifact_location=(base / "art").as_uri())
    train = pd.read_csv(DATA / "train.csv")
    x, y = train.drop(columns=[LABEL]), train[LABEL]
    info: dict = {"tracking_uri": uri}

    def log(model, name, x_sig, y_sig, *, register=None, meta=None, pyfunc=False):
        with mlflow.start_run(experiment_id=exp) as run:
            sig = infer_signature(x_sig, y_sig)
            if pyfunc:
                mi = mlflow.pyfunc.log_model(python_model=model, name="model", signature=sig,
                                             pip_requirements=PIP)
            else:
                mi = mlflow.sklearn.log_model(model, name="model", signature=sig,
                                              pip_requirements=PIP,
                                              metadata={"mlcd": meta} if meta else None,
                                              registered_model_name=register)
        info[name] = {"runs": f"runs:/{run.info.run_id}/model", "run_id": run.info.run_id,
                      "model_uri": mi.model_uri}

    meta = {"task": "classification", "label": LABEL}
    good = _clf_pipeline(["income", "debt"]).fit(x, y)
    log(good, "good", x, good.predict(x), register="credit", meta=meta)
    worse = _clf_pipeline([], ["age_band"]).fit(x, y)
    log(worse, "worse", x, worse.predict(x), register="credit", meta=meta)
    biased = _clf_pipeline(["income"], ["sex"]).fit(x, (x["sex"] == "M").astype(int))
    log(biased, "biased", x, biased.predict(x), meta=meta)
    reg = pd.read_csv(DATA / "regression.csv")
    rx, ry = reg[["x1", "x2"]], reg["target"]
    lin = LinearRegression().fit(rx, ry)
    log(lin, "regressor", rx, lin.predict(rx))
    log(_python_model(1), "wrong_shape", x, y, pyfunc=True)
    log(_python_model(0), "pyfunc", x, y, pyfunc=True)
    client = MlflowClient(uri)
    client.set_registered_model_alias("credit", "champion", "1")
    (base / "info.json").write_text(json.dumps(info))
    return info


@pytest.fixture(scope="session")
def eval_store(tmp_path_factory) -> dict:
    """The shared store (built once per session even when imported by several modules)."""
    base = tmp_path_factory.getbasetemp() / "mlcd-eval-store"
    marker = base / "info.json"
    if marker.exists():
        return json.loads(marker.read_text())
    return build_store(base)


@pytest.fixture
def store(request, monkeypatch) -> dict:
    """The shared store, with MLFLOW_TRACKING_URI pointing at it for this test.

    Other modules import ``eval_store`` and ``store`` from here (by these names)."""
    info = request.getfixturevalue("eval_store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", info["tracking_uri"])
    return info


def test_load_registry_version_and_alias(store):
    m = models.load("models:/credit/1")
    assert (m.name, m.version, m.run_id) == ("credit", "1", store["good"]["run_id"])
    assert m.flavor == "sklearn" and m.task == "classification" and m.classes == [0, 1]
    assert m.input_columns == ["income", "debt", "sex", "age_band"]
    assert m.metadata["mlcd"]["label"] == LABEL
    champion = models.load("models:/credit@champion")
    assert (champion.version, champion.resolved_uri) == ("1", "models:/credit/1")
    latest = models.load("models:/credit/latest")
    assert latest.version == "2"


def test_load_run_logged_model_and_local_path(store, tmp_path):
    by_run = models.load(store["good"]["runs"])
    assert by_run.run_id == store["good"]["run_id"] and by_run.name is None
    by_id = models.load(store["good"]["model_uri"])
    assert by_id.run_id == store["good"]["run_id"]
    local = tmp_path / "m"
    import mlflow.sklearn

    mlflow.sklearn.save_model(by_run._impl, local, pip_requirements=PIP)
    for uri in (str(local), local.as_uri(), str(local / "MLmodel")):
        m = models.load(uri)
        assert m.task == "classification" and m.run_id is None


def test_predict_and_proba_shapes(store):
    m = models.load("models:/credit/1")
    df = pd.read_csv(DATA / "test.csv")
    x = models.prepare_features(df, LABEL, m)
    assert list(x.columns) == ["income", "debt", "sex", "age_band"]
    assert m.predict(x).shape == (len(df),)
    proba = m.predict_proba(x)
    assert proba.shape == (len(df), 2) and np.allclose(proba.sum(axis=1), 1)


def test_prepare_features_follows_signature_order_and_drops_unknown(store):
    m = models.load("models:/credit/1")
    df = pd.read_csv(DATA / "test.csv")
    shuffled = df[["age_band", LABEL, "sex", "debt", "income"]].assign(extra=1)
    x = models.prepare_features(shuffled, LABEL, m)
    assert list(x.columns) == ["income", "debt", "sex", "age_band"]
    with pytest.raises(DataError, match="'debt'.*missing"):
        models.prepare_features(df.drop(columns=["debt"]), LABEL, m, path="t.csv")


def test_pyfunc_model_has_no_proba_and_wrong_shape_fails(store):
    m = models.load(store["pyfunc"]["runs"])
    assert m.flavor == "python_function" and m.task is None
    df = pd.read_csv(DATA / "test.csv")
    x = models.prepare_features(df, LABEL, m)
    assert m.predict(x).shape == (len(df),)
    assert m.predict_proba(x) is None
    assert models.resolve_task(m, df[LABEL]) == "classification"
    bad = models.load(store["wrong_shape"]["runs"])
    with pytest.raises(StageFailed, match=rf"shape \({len(df) + 1},\), expected \({len(df)},\)"):
        bad.predict(x)


@pytest.mark.parametrize("uri", ["models:/nope/1", "models:/credit/99", "models:/credit@gone",
                                 "runs:/0123456789abcdef0123456789abcdef/model",
                                 "models:/m-00000000000000000000000000000000", "no/such/dir"])
def test_missing_model_is_config_error_naming_uri(store, uri):
    with pytest.raises(ConfigError, match=uri.replace("/", ".").replace("@", ".")):
        models.load(uri)


def test_directory_without_mlmodel_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no MLmodel file"):
        models.load(str(tmp_path))


def test_unreachable_server_is_service_error(monkeypatch):
    from tests.services import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(ServiceError, match="unavailable"):
        models.load("models:/credit/1", f"http://127.0.0.1:{free_port()}")


def test_check_predictions():
    assert models.check_predictions(np.zeros((3, 1)), 3).shape == (3,)
    assert models.check_predictions(pd.DataFrame({"p": [1, 2]}), 2).tolist() == [1, 2]
    with pytest.raises(StageFailed, match=r"shape \(3, 2\)"):
        models.check_predictions(np.zeros((3, 2)), 3)
    with pytest.raises(StageFailed, match="probabilities of shape"):
        models.check_probabilities(np.zeros((3, 3)), 3, 2)


def test_nan_features_name_the_column(store):
    m = models.load("models:/credit/1")
    df = pd.read_csv(DATA / "test.csv")
    df.loc[4, "income"] = np.nan
    x = models.prepare_features(df, LABEL, m)
    with pytest.raises(DataError, match=r"'income' has 1 missing.*data row 5"):
        m.predict(x)


def test_text_in_a_numeric_signature_column_is_data_error_naming_column_and_row(store):
    m = models.load("models:/credit/1")
    df = pd.read_csv(DATA / "test.csv")
    df["income"] = df["income"].astype(str)
    df.loc[2, "income"] = "abc"  # data row 3
    with pytest.raises(DataError, match=r"^t.csv: feature column 'income' must be a number "
                                        r"\(model credit v1 signature: double\), but data row 3 "
                                        r"holds 'abc'$"):
        models.prepare_features(df, LABEL, m, path="t.csv")
    # the same check when the frame reaches predict without prepare_features (serve)
    with pytest.raises(DataError, match="'income' must be a number.*data row 3 holds 'abc'"):
        m.predict(df.drop(columns=[LABEL]))
    # text that reads as a number is the model's business
    ok = pd.read_csv(DATA / "test.csv").astype({"debt": str})
    assert m.predict(models.prepare_features(ok, LABEL, m)).shape == (len(ok),)


def test_mlflow_schema_enforcement_error_is_data_error(store):
    m = models.load(store["pyfunc"]["runs"])
    df = pd.read_csv(DATA / "test.csv").drop(columns=[LABEL])
    df["sex"] = np.arange(len(df))  # the signature wants a string
    with pytest.raises(DataError, match=r"feature column 'sex' does not match model .* "
                                        r"signature \(string\): Incompatible input types for "
                                        r"column sex.*first bad value 0 at data row 1$"):
        m.predict(df)


def test_text_without_signature_names_column_and_row(store, tmp_path):
    import mlflow.sklearn

    local = tmp_path / "nosig"
    mlflow.sklearn.save_model(models.load("models:/credit/1")._impl, local, pip_requirements=PIP)
    m = models.load(str(local))
    assert m.signature is None
    df = pd.read_csv(DATA / "test.csv").drop(columns=[LABEL])
    df["debt"] = df["debt"].astype(object)
    df.loc[6, "debt"] = "n/a"
    with pytest.raises(DataError, match=r"feature column 'debt' must be a number for model .*, "
                                        r"but data row 7 holds 'n/a'"):
        m.predict(df)


@pytest.mark.parametrize("requirement, mlflow_checks", [
    ("numpy>=1.0", False),                  # met: the cheap check is enough
    ("numpy<1.0", True),                    # another version: MLflow's own check warns
    ("surely-not-installed-dist==1", True),  # not installed under that name: MLflow decides
    ("numpy; python_version < '3'", False),  # a marker that does not apply: skipped
])
def test_pyfunc_requirements_are_checked_cheaply_then_by_mlflow(tmp_path, monkeypatch,
                                                                 requirement, mlflow_checks):
    """A python_function model's requirements: when each is installed at an allowed
    version MLflow's check (which maps every installed distribution) is skipped; otherwise
    it runs and logs its warning as it always does."""
    import mlflow.pyfunc

    path = tmp_path / "m"
    mlflow.pyfunc.save_model(str(path), python_model=_python_model(0),
                             pip_requirements=["pandas", requirement])
    calls = []
    original = mlflow.pyfunc.warn_dependency_requirement_mismatches
    monkeypatch.setattr(mlflow.pyfunc, "warn_dependency_requirement_mismatches",
                        lambda reqs: calls.append(reqs) or original(reqs))
    m, seen = _load_logging(path, "mlflow.utils.requirements_utils")
    assert m.flavor == "python_function"
    assert m.predict(pd.DataFrame({"income": [10.0, 90.0]})).tolist() == [0, 1]
    assert bool(calls) == mlflow_checks
    mismatch = [s for s in seen if "mismatches between the model's dependencies" in s]
    assert bool(mismatch) == mlflow_checks
    if mlflow_checks:
        assert requirement.split(";")[0] in mismatch[0]


def test_pyfunc_python_version_warning_stays_with_the_cheap_check(tmp_path):
    """Requirements met (MLflow's requirement check skipped), the model saved by another
    Python: MLflow's Python-version warning is still logged."""
    import mlflow.pyfunc
    import yaml

    path = tmp_path / "m"
    mlflow.pyfunc.save_model(str(path), python_model=_python_model(0),
                             pip_requirements=["pandas"])
    meta = yaml.safe_load((path / "MLmodel").read_text())
    meta["flavors"]["python_function"]["python_version"] = "3.1.0"
    (path / "MLmodel").write_text(yaml.safe_dump(meta))
    _, seen = _load_logging(path, "mlflow.pyfunc")
    assert any("Python 3.1.0" in s and "differs" in s for s in seen), seen


def _load_logging(path, logger_name: str):
    """``models.load(path)`` and the messages ``logger_name`` logged meanwhile."""
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        return models.load(str(path)), seen
    finally:
        logger.removeHandler(handler)

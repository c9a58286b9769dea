"""``mlcd_actions.training.sklearn_model``: the model directory written without mlflow is the
one ``mlflow.sklearn.save_model`` writes, file by file (MLmodel field by field), loads in
real mlflow with the same predictions, and every case it does not cover is left to mlflow."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcd_actions.training import estimators, sklearn_model

REQS = ["scikit-learn==1.0", "pandas==2.0"]


def _frame(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"x0": rng.normal(size=rows), "x1": rng.normal(size=rows)})
    df["city"] = rng.choice(["paris", "lyon", None], rows)
    df["obj"] = pd.Series(rng.choice(["a", "b"], rows), dtype=object)
    df["n"] = rng.integers(0, 5, rows)
    df["i32"] = rng.integers(0, 5, rows).astype("int32")
    df["f32"] = rng.normal(size=rows).astype("float32")
    df["flag"] = rng.integers(0, 2, rows).astype(bool)
    df["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 99, rows), "D")
    df.loc[3, "x1"] = np.nan
    df["label"] = np.where(df.x0 > 0, "yes", "no")
    return df


@pytest.fixture(scope="module")
def fitted():
    df = _frame()
    X = df.drop(columns=["label"])
    model = estimators.build("logistic_regression", X.drop(columns=["when"]))
    model.fit(X.drop(columns=["when"]), df["label"])
    return model, X


def _mlflow_save(path: Path, model, sig_X, pred, example, reqs, fmt, metadata):
    import mlflow.sklearn
    from mlflow.models import Model, infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm = Model(artifact_path="mlflow-artifacts:/1/models/m-1/artifacts", model_uuid="m-1",
                   run_id="r1", metadata=metadata, model_id="m-1")
        mlflow.sklearn.save_model(model, str(path), mlflow_model=mm,
                                  signature=infer_signature(sig_X, pred),
                                  input_example=example, pip_requirements=reqs,
                                  serialization_format=fmt)
    return mm


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle"])
@pytest.mark.parametrize("metadata", [{"mlcd": {"task": "classification", "x": [1, None]}}, None])
@pytest.mark.parametrize("with_datetime", [False, True])
def test_files_equal_what_mlflow_writes(tmp_path, fitted, fmt, metadata, with_datetime):
    model, X = fitted
    if not with_datetime:
        X = X.drop(columns=["when"])
    sig_X, example = X.head(200), X.head(5)
    pred = model.predict(X.drop(columns=["when"], errors="ignore").head(200))
    ref = _mlflow_save(tmp_path / "ref", model, sig_X, pred, example, REQS, fmt, metadata)
    plan = sklearn_model.plan(model, sig_X, pred, example, REQS, serialization_format=fmt)
    assert plan is not None
    sklearn_model.save(tmp_path / "ours", model, plan, run_id="r1", model_id="m-1",
                       artifact_path="mlflow-artifacts:/1/models/m-1/artifacts",
                       metadata=metadata, utc_time_created=ref.utc_time_created)
    theirs = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == theirs
    mine = yaml.safe_load((tmp_path / "ours" / "MLmodel").read_text())
    want = yaml.safe_load((tmp_path / "ref" / "MLmodel").read_text())
    for key in sorted(set(mine) | set(want)):
        assert mine.get(key) == want.get(key), key
    for name in theirs:  # byte for byte, the pickle and the MLmodel text included
        assert (tmp_path / "ours" / name).read_bytes() == \
            (tmp_path / "ref" / name).read_bytes(), name


def test_real_mlflow_loads_it_and_predicts_the_same(tmp_path, fitted):
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import Model

    model, X = fitted
    X = X.drop(columns=["when"])
    pred = model.predict(X.head(200))
    plan = sklearn_model.plan(model, X.head(200), pred, X.head(5), REQS,
                              serialization_format="cloudpickle")
    path = sklearn_model.save(tmp_path / "m", model, plan, run_id=None, model_id="m-2",
                              artifact_path=None, metadata={"mlcd": {"task": "classification"}})
    info = Model.load(str(path))
    assert info.model_id == "m-2" and info.signature.inputs.input_names() == list(X.columns)
    np.testing.assert_array_equal(mlflow.sklearn.load_model(str(path)).predict_proba(X),
                                  model.predict_proba(X))
    pyfunc = mlflow.pyfunc.load_model(str(path))  # schema enforcement on, as when served
    np.testing.assert_array_equal(pyfunc.predict(X), model.predict(X))
    # the scoring server's input: the saved serving example, validated by mlflow itself
    from mlflow.models.utils import _validate_serving_input

    serving = (path / "serving_input_example.json").read_text()
    np.testing.assert_array_equal(np.asarray(_validate_serving_input(str(path), serving)),
                                  model.predict(X.head(5)))


def test_writing_imports_no_mlflow(tmp_path):
    code = f"""
import sys, numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from mlcd_actions.training import sklearn_model
X = pd.DataFrame({{"a": np.arange(20.0), "b": np.arange(20) % 3}})
m = LogisticRegression().fit(X, np.arange(20) % 2)
p = sklearn_model.plan(m, X, m.predict(X), X.head(3), ["numpy==1.0"],
                       serialization_format="cloudpickle")
sklearn_model.save({str(tmp_path / 'm')!r}, m, p, run_id="r", model_id="m-1",
                   artifact_path=None, metadata=None)
print(sorted(n for n in sys.modules if n == "mlflow" or n.startswith("mlflow.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "m" / "MLmodel").is_file()


@pytest.mark.parametrize("case", ["skops", "code_paths", "unpinned", "mlflow_req", "category",
                                  "nullable_int", "series_pred", "int_names", "lock", "empty"])
def test_cases_it_does_not_cover_are_left_to_mlflow(fitted, monkeypatch, case):
    model, X = fitted
    X = X.drop(columns=["when"])
    sig_X, example, reqs, fmt, code = X.head(50), X.head(5), list(REQS), "cloudpickle", None
    pred = model.predict(sig_X)
    if case == "skops":
        fmt = "skops"
    elif case == "code_paths":
        code = ["train.py"]
    elif case == "unpinned":
        reqs.append("lightgbm>=4")
    elif case == "mlflow_req":
        reqs.append("mlflow==3.0.0")
    elif case == "category":
        sig_X = sig_X.assign(city=sig_X.city.astype("category"))
    elif case == "nullable_int":
        sig_X = sig_X.assign(n=sig_X.n.astype("Int64"))
    elif case == "series_pred":
        pred = pd.Series(pred)
    elif case == "int_names":
        sig_X = sig_X.set_axis(range(sig_X.shape[1]), axis=1)
        example = example.set_axis(range(sig_X.shape[1]), axis=1)
    elif case == "lock":
        monkeypatch.setenv("MLFLOW_LOCK_MODEL_DEPENDENCIES", "true")
    elif case == "empty":
        example = example.head(0)
    assert sklearn_model.plan(model, sig_X, pred, example, reqs, serialization_format=fmt,
                              code_paths=code) is None

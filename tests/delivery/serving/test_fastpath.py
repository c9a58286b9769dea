"""The numpy fast path: same answers as the model's own DataFrame calls, or not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.core.errors import DataError
from mlcd_actions.delivery.serving import payload
from mlcd_actions.delivery.serving.spec import ModelSpec
from mlcd_actions.models import loading as models
from tests.delivery.serving import fixtures
from tests.floats import assert_batch_equal

NUMERIC = ["a", "b", "c"]


def _save(estimator, path, label="y", task="classification"):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    df = fixtures.frame(120, seed=3)
    X, y = df[NUMERIC], df[label]
    mlflow.sklearn.save_model(estimator.fit(X, y), str(path), signature=infer_signature(X, y),
                              pip_requirements=fixtures.PIP, serialization_format="cloudpickle",
                              metadata={"mlcd": {"task": task, "label": label}})
    return path


def _numeric_pipeline(final):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), final)


def _estimators():
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    return {
        "logistic": _numeric_pipeline(LogisticRegression()),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0),
        "hgb": HistGradientBoostingClassifier(max_iter=5),
        "svc-proba": _numeric_pipeline(SVC(probability=True, random_state=0)),
    }


@pytest.mark.parametrize("name", ["logistic", "forest", "hgb", "svc-proba"])
def test_numeric_models_take_the_fast_path_with_the_same_answers(tmp_path, name):
    path = _save(_estimators()[name], tmp_path / name)
    spec = ModelSpec(models.load(str(path)))
    assert spec.fast
    df = fixtures.frame(50, seed=21)
    impl = spec.model._impl
    want_pred, want_proba = impl.predict(df[NUMERIC]), impl.predict_proba(df[NUMERIC])
    # request arrays in another order than fitted, plus a column the model never saw
    arrays = {c: df[c].to_numpy() for c in ["c", "customer_id", "b", "a"]}
    pred, proba = spec.predict_arrays(arrays, len(df))
    assert_batch_equal(pred, want_pred)
    assert_batch_equal(proba, want_proba)
    pred2, none = spec.predict(df[["b", "a", "c"]], proba=False)
    assert none is None
    assert_batch_equal(pred2, want_pred)


def test_regression_fast_path(tmp_path):
    from sklearn.linear_model import Ridge

    path = _save(_numeric_pipeline(Ridge()), tmp_path / "ridge", label="amount",
                 task="regression")
    spec = ModelSpec(models.load(str(path)))
    assert spec.fast
    df = fixtures.frame(30, seed=5)
    pred, proba = spec.predict(df[NUMERIC])
    assert proba is None
    assert_batch_equal(pred, spec.model._impl.predict(df[NUMERIC]))


def test_string_features_and_name_selecting_transformers_keep_the_dataframe(tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    with_strings = ModelSpec(models.load(str(fixtures.binary_model(tmp_path / "strings"))))
    assert not with_strings.fast
    # numeric only, but the ColumnTransformer selects "b" and "a" by name, dropping "c"
    by_name = Pipeline([("pick", ColumnTransformer([("s", StandardScaler(), ["b", "a"])])),
                        ("lr", LogisticRegression())])
    spec = ModelSpec(models.load(str(_save(by_name, tmp_path / "names"))))
    assert not spec.fast
    df = fixtures.frame(20, seed=8)
    pred, _ = spec.predict(df[NUMERIC])
    assert_batch_equal(pred, spec.model._impl.predict(df[NUMERIC]))


def test_bad_values_still_fail_as_data_errors(tmp_path):
    from sklearn.linear_model import LogisticRegression

    spec = ModelSpec(models.load(str(_save(_numeric_pipeline(LogisticRegression()),
                                           tmp_path / "m"))))
    assert spec.fast
    batch = payload.parse(b'[{"a": null, "b": 1, "c": 2}]', spec.columns)
    with pytest.raises(DataError, match="'a'"):
        spec.predict_arrays(batch.arrays, batch.n_rows)
    # a frame with a text column where a number belongs goes to the DataFrame path too
    with pytest.raises(DataError):
        spec.predict(pd.DataFrame({"a": ["x"], "b": [1.0], "c": [2]}))


def _kind(spec):
    return type(spec._fast).__name__ if spec._fast is not None else None


@pytest.mark.parametrize("label,task", [("y", "classification"), ("kind", "classification"),
                                        ("amount", "regression")])
@pytest.mark.parametrize("with_mean", [True, False])
def test_plain_linear_pipelines_are_compiled_and_exact(tmp_path, label, task, with_mean):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    final = Ridge() if task == "regression" else LogisticRegression(max_iter=500)
    model = make_pipeline(StandardScaler(with_mean=with_mean), final)
    spec = ModelSpec(models.load(str(_save(model, tmp_path / "m", label=label, task=task))))
    assert _kind(spec) == "CompiledPath"
    df = fixtures.frame(64, seed=31)
    impl = spec.model._impl
    batch = payload.parse(df[["c", "a", "b"]].to_json(orient="records").encode(), spec.columns)
    pred, proba = spec.predict_arrays(batch.arrays, batch.n_rows)
    if task == "regression":
        assert proba is None
        assert np.allclose(pred, impl.predict(df[NUMERIC]), rtol=1e-12, atol=1e-12)
    else:
        assert pred.tolist() == impl.predict(df[NUMERIC]).tolist()
        assert np.allclose(proba, impl.predict_proba(df[NUMERIC]), rtol=1e-12, atol=1e-15)
    # a null still gets the DataFrame path's message naming the column
    bad = payload.parse(b'[{"a": 1.0, "b": null, "c": 2}]', spec.columns)
    with pytest.raises(DataError, match="'b'"):
        spec.predict_arrays(bad.arrays, bad.n_rows)


def test_other_estimators_are_not_compiled(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    spec = ModelSpec(models.load(str(_save(make_pipeline(MinMaxScaler(), LogisticRegression()),
                                           tmp_path / "m"))))
    assert _kind(spec) == "NumpyPath"


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_logistic_one_pass_is_predict_and_predict_proba_exactly(classes, sparse_input):
    """One decision function gives what LogisticRegression's predict and predict_proba
    compute (labels equal, probabilities bit for bit), on dense and sparse input."""
    from scipy import sparse
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlcd_actions.delivery.serving.spec import one_pass

    X, y = load_iris(return_X_y=True)
    keep = y < classes
    X, y = X[keep], np.array(["setosa", "versicolor", "virginica"])[y[keep]]
    model = LogisticRegression(max_iter=500).fit(X, y)
    x = sparse.csr_matrix(X[::7]) if sparse_input else X[::7]
    pred, proba = one_pass(model, x)
    assert pred.tolist() == model.predict(x).tolist()
    assert np.array_equal(proba, model.predict_proba(x))


@pytest.mark.parametrize("options", [{}, {"sublinear_tf": True, "norm": "l1"},
                                     {"binary": True, "norm": None, "use_idf": False},
                                     {"ngram_range": (1, 2), "stop_words": "english"}])
def test_tfidf_block_is_the_vectorizer_transform(options):
    """The frameless TF-IDF block stores what ``TfidfVectorizer.transform`` stores (same
    indices, same values bit for bit), unknown words and empty documents included."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from benchmarks import matrix
    from mlcd_actions.delivery.serving.fastpath import _tfidf_block

    docs = matrix.inputs("tfidf", 60, seed=2)["text"].tolist()
    vec = TfidfVectorizer(**options).fit(docs[:40])
    docs += ["", "zzunseen words only", "Late DELIVERY, late refund!"]
    run = _tfidf_block(vec)
    got = run({"text": np.array(docs, dtype=object)}, ["text"], len(docs))
    want = vec.transform(docs)
    for attr in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got, attr), getattr(want, attr)), attr
    assert got.shape == want.shape


def test_csr_hstack_stores_what_scipy_hstack_stores():
    from scipy import sparse

    from mlcd_actions.delivery.serving.fastpath import csr_hstack

    rng = np.random.default_rng(0)
    a = sparse.random(7, 5, density=0.3, format="csr", random_state=1)
    dense = rng.normal(size=(7, 2))
    dense[2, 1] = 0.0
    dense[4, 0] = np.nan
    b = sparse.random(7, 3, density=0.5, format="csr", random_state=2)
    got = csr_hstack([a, dense, b], 7)
    want = sparse.hstack([a, dense, b]).tocsr()
    for attr in ("indptr", "indices"):
        assert np.array_equal(getattr(got, attr), getattr(want, attr)), attr
    assert np.array_equal(got.data, want.data, equal_nan=True)

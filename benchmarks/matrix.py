"""The model matrix of ``bench_serve`` and ``bench_predict``: the models users ship.

Each entry builds a small trained model, saves it the way ``mlcd train`` does (MLflow
``sklearn`` flavor, ``cloudpickle`` serialization, a signature inferred from the training
frame, an input example, the ``mlcd`` metadata block; a model that is not scikit-learn as
a ``python_function`` wrapping it, pickled by value) and generates inputs:

* ``logreg``: 6 numeric features -> ``StandardScaler`` + ``LogisticRegression``;
* ``hgb``: 4 numeric + 3 categorical columns -> one-hot + ``HistGradientBoostingClassifier``;
* ``rf``: the same columns -> one-hot + ``RandomForestClassifier`` (100 trees);
* ``tfidf``: a free-text column (plus one numeric) -> ``TfidfVectorizer`` +
  ``LogisticRegression``;
* ``pyfunc``: an MLflow ``python_function`` model that is not scikit-learn (a numpy
  scorer, as a user's own class would be).

MLflow loads these with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true`` (:data:`ENV`).
``tests/delivery/serving/test_batching.py`` uses the same matrix (``from benchmarks import matrix``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MODELS = ("logreg", "hgb", "rf", "tfidf", "pyfunc")
ENV = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
TRAIN_ROWS = 5000
_WORDS = ("late delivery refund broken great love fast slow price support screen battery "
          "cheap quality return order again never always works stopped happy angry box "
          "color size fits small large ok bad good excellent terrible service agent call "
          "email waited weeks days hours replacement warranty").split()


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    frame: Callable[[int, int], pd.DataFrame]   # (rows, seed) -> features + label "y"
    fit: Callable[[pd.DataFrame, pd.Series], object]


def _numeric(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 6)).round(6), columns=[f"f{i}" for i in range(6)])
    df["y"] = ((df.f0 + df.f1 - df.f2 + rng.normal(scale=0.5, size=n)) > 0).astype(np.int64)
    return df


def _tabular(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(np.int64),
        "income": rng.lognormal(10, 0.5, n).round(2),
        "balance": rng.normal(1000, 400, n).round(2),
        "tenure": rng.integers(0, 30, n).astype(np.int64),
        "region": rng.choice(["north", "south", "east", "west", "center"], n),
        "plan": rng.choice(["basic", "plus", "pro", "team"], n),
        "channel": rng.choice(["web", "store", "phone"], n),
    })
    score = ((df.age - 45) / 15 + (df.balance - 1000) / 400 + (df.plan == "pro") * 1.2
             - (df.channel == "phone") * 0.8 + rng.normal(scale=0.8, size=n))
    df["y"] = (score > 0).astype(np.int64)
    return df


def _text(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 25, n)
    vocab = np.array(_WORDS)
    words = rng.integers(0, len(vocab), lengths.sum())
    texts, start = [], 0
    for k in lengths:
        texts.append(" ".join(vocab[words[start:start + k]]))
        start += k
    df = pd.DataFrame({"text": texts, "stars": rng.integers(1, 6, n).astype(np.int64)})
    good = df.text.str.count("great|love|happy|excellent|good|fast") \
        - df.text.str.count("broken|angry|terrible|bad|slow|never")
    df["y"] = ((good + (df.stars - 3) * 0.5 + rng.normal(scale=0.5, size=n)) > 0) \
        .astype(np.int64)
    return df


def _onehot_pipeline(estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "plan", "channel"])],
        remainder="passthrough")
    return Pipeline([("pre", pre), ("model", estimator)])


def _fit_logreg(X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


def _fit_hgb(X, y):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return _onehot_pipeline(HistGradientBoostingClassifier(random_state=0)).fit(X, y)


def _fit_rf(X, y):
    from sklearn.ensemble import RandomForestClassifier

    return _onehot_pipeline(RandomForestClassifier(n_estimators=100, min_samples_leaf=2,
                                                   random_state=0)).fit(X, y)


def _fit_tfidf(X, y):
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pre = ColumnTransformer([("text", TfidfVectorizer(ngram_range=(1, 2)), "text"),
                             ("num", StandardScaler(), ["stars"])])
    return Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=500))]).fit(X, y)


class LinearScorer:
    """A user's own model class, not scikit-learn: numpy weights and a threshold."""

    def __init__(self, weights: dict[str, float], bias: float) -> None:
        self.weights = weights
        self.bias = bias

    def predict(self, df):
        score = np.full(len(df), self.bias)
        for name, w in self.weights.items():
            score = score + w * df[name].to_numpy(dtype=np.float64)
        return (score > 0).astype(np.int64)


def _fit_pyfunc(X, y):
    coef, *_ = np.linalg.lstsq(np.c_[X.to_numpy(), np.ones(len(X))], y * 2.0 - 1, rcond=None)
    return LinearScorer({c: float(w) for c, w in zip(X.columns, coef[:-1], strict=True)}, float(coef[-1]))


ENTRIES = {
    "logreg": Entry("logreg", "scaler + logistic regression (6 numeric)", _numeric,
                    _fit_logreg),
    "hgb": Entry("hgb", "one-hot + HistGradientBoosting (4 numeric, 3 categorical)",
                 _tabular, _fit_hgb),
    "rf": Entry("rf", "one-hot + RandomForest, 100 trees (4 numeric, 3 categorical)",
                _tabular, _fit_rf),
    "tfidf": Entry("tfidf", "free text -> TF-IDF (1-2 grams) + logistic regression", _text,
                   _fit_tfidf),
    "pyfunc": Entry("pyfunc", "python_function model, not scikit-learn (numpy scorer)",
                    _numeric, _fit_pyfunc),
}


def parse(value: str) -> list[str]:
    """``--model all`` or a comma-separated list of names from :data:`MODELS`."""
    names = list(MODELS) if value == "all" else [v.strip() for v in value.split(",") if v]
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise SystemExit(f"--model: unknown {', '.join(unknown)}; choose from "
                         f"{', '.join(MODELS)} or all")
    return names


def build(name: str, path: Path, rows: int = TRAIN_ROWS) -> Path:
    """Train model ``name`` on ``rows`` rows and save it at ``path``."""
    import cloudpickle
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature

    entry = ENTRIES[name]
    df = entry.frame(rows, 0)
    X, y = df.drop(columns=["y"]), df["y"]
    model = entry.fit(X, y)
    meta = {"mlcd": {"task": "classification", "label": "y", "features": list(X.columns),
                     "feature_columns": list(X.columns), "classes": [0, 1]}}
    signature = infer_signature(X.head(100), model.predict(X.head(100)))
    common = {"signature": signature, "input_example": X.head(5), "metadata": meta}
    if name == "pyfunc":
        import sys

        from mlcd_actions.training import pyfunc as wrappers

        cloudpickle.register_pickle_by_value(wrappers)
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            mlflow.pyfunc.save_model(str(path), python_model=wrappers.PredictWrapper(model),
                                     pip_requirements=["numpy", "pandas", "cloudpickle"],
                                     **common)
        finally:
            cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
            cloudpickle.unregister_pickle_by_value(wrappers)
    else:
        mlflow.sklearn.save_model(model, str(path), serialization_format="cloudpickle",
                                  pip_requirements=["scikit-learn", "pandas", "numpy",
                                                    "cloudpickle"], **common)
    return path


def inputs(name: str, rows: int, seed: int = 1) -> pd.DataFrame:
    """``rows`` fresh input rows for model ``name`` (features only, no label)."""
    return ENTRIES[name].frame(rows, seed).drop(columns=["y"])

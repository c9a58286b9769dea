"""Training entrypoint for ``mlcd train`` (``train.entrypoint: credit.train:train``).

mlcd calls ``train(train_df, params)`` with the whole prepared training set (label
included; its name is ``params["label"]``) and logs the returned model to MLflow. The
model takes every column but the label and picks its own features with a
ColumnTransformer, so the id, the hashed e-mail and the sensitive attributes never reach
the classifier.
"""

from __future__ import annotations

from typing import Any

import cloudpickle
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import credit
from credit.features import CATEGORICAL, NUMERIC, add_ratios

# ship this package's code inside the pickled model: the serving image needs no copy of it
cloudpickle.register_pickle_by_value(credit)


def build(params: dict[str, Any]) -> Pipeline:
    features = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
    ], remainder="drop")
    model = params.get("model", "logistic_regression")
    seed = int(params.get("seed", 0))
    if model == "logistic_regression":
        clf = LogisticRegression(C=float(params.get("C", 1.0)), max_iter=1000)
    elif model == "gradient_boosting":
        clf = HistGradientBoostingClassifier(
            max_iter=int(params.get("max_iter", 200)),
            learning_rate=float(params.get("learning_rate", 0.05)), random_state=seed)
    else:
        raise ValueError(f"params.model: unknown model {model!r} "
                         "(logistic_regression or gradient_boosting)")
    return Pipeline([("ratios", FunctionTransformer(add_ratios)), ("features", features),
                     ("classifier", clf)])


def train(train_df: pd.DataFrame, params: dict[str, Any]) -> Pipeline:
    label = params["label"]
    X = train_df.drop(columns=[label])
    y = train_df[label]
    return build(params).fit(X, y)

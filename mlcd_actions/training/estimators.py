"""Built-in estimators: a scikit-learn ``Pipeline`` that takes the raw prepared frame.

Numeric columns are imputed (median) and scaled; other columns are imputed (most frequent)
and one-hot encoded (unknown categories ignored), through a ``ColumnTransformer`` that
selects columns by dtype, so the model takes a frame of every column but the label
(the training contract, DESIGN §2). Parameters from ``--params`` go to the estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
MAX_CLASSES_FOR_INTEGERS = 20

# name -> (task, "module:Class", default parameters)
BUILTINS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "logistic_regression": (CLASSIFICATION, "sklearn.linear_model:LogisticRegression",
                            {"max_iter": 1000}),
    "random_forest_classifier": (CLASSIFICATION, "sklearn.ensemble:RandomForestClassifier",
                                 {"n_estimators": 100, "random_state": 0}),
    "gradient_boosting_classifier": (CLASSIFICATION,
                                     "sklearn.ensemble:HistGradientBoostingClassifier",
                                     {"random_state": 0}),
    "decision_tree_classifier": (CLASSIFICATION, "sklearn.tree:DecisionTreeClassifier",
                                 {"random_state": 0}),
    "random_forest_regressor": (REGRESSION, "sklearn.ensemble:RandomForestRegressor",
                                {"n_estimators": 100, "random_state": 0}),
    "gradient_boosting_regressor": (REGRESSION, "sklearn.ensemble:HistGradientBoostingRegressor",
                                    {"random_state": 0}),
    "decision_tree_regressor": (REGRESSION, "sklearn.tree:DecisionTreeRegressor",
                                {"random_state": 0}),
    "ridge": (REGRESSION, "sklearn.linear_model:Ridge", {}),
    "linear_regression": (REGRESSION, "sklearn.linear_model:LinearRegression", {}),
}
DEFAULT = {CLASSIFICATION: "logistic_regression", REGRESSION: "ridge"}
# keys of the params dict that belong to mlcd, not to the estimator
RESERVED_PARAMS = ("label", "task", "estimator")


def names() -> list[str]:
    return sorted(BUILTINS)


def infer_task(y: pd.Series) -> str:
    """Strings, booleans, categories and integers with at most 20 distinct values are
    classification labels; anything else is a regression target."""
    import pandas as pd

    if (pd.api.types.is_bool_dtype(y) or isinstance(y.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(y) or pd.api.types.is_string_dtype(y)):
        return CLASSIFICATION
    if pd.api.types.is_integer_dtype(y) and y.nunique(dropna=True) <= MAX_CLASSES_FOR_INTEGERS:
        return CLASSIFICATION
    if pd.api.types.is_float_dtype(y):
        values = y.dropna()
        if (len(values) and (values == values.round()).all()
                and values.nunique() <= 2):  # 0.0/1.0 labels read from CSV
            return CLASSIFICATION
    return REGRESSION


def resolve(estimator: str | None, task: str) -> str:
    """The built-in estimator name for ``task`` (the default when none is named)."""
    name = (estimator or DEFAULT[task]).strip().lower().replace("-", "_")
    if name not in BUILTINS:
        raise ConfigError(f"--estimator {estimator!r} is not a built-in estimator "
                          f"(choose one of: {', '.join(names())})")
    if BUILTINS[name][0] != task:
        raise ConfigError(f"--estimator {name} is a {BUILTINS[name][0]} estimator but the task "
                          f"is {task} (choose one of: "
                          f"{', '.join(n for n in names() if BUILTINS[n][0] == task)})")
    return name


def _load(path: str) -> Callable[..., Any]:
    import importlib

    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str, X: pd.DataFrame, params: dict[str, Any] | None = None):
    """An unfitted Pipeline(preprocess, model) for the columns of ``X``."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    _task, path, defaults = BUILTINS[name]
    kwargs = {**defaults, **{k: v for k, v in (params or {}).items()
                             if k not in RESERVED_PARAMS}}
    try:
        model = _load(path)(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"--params: {name} does not accept these parameters: {exc}") from exc
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])
               and not pd.api.types.is_bool_dtype(X[c])]
    other = [c for c in X.columns if c not in numeric]
    transformers = []
    if numeric:
        transformers.append(("num", Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]), numeric))
    if other:
        transformers.append(("cat", Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]), other))
    pre = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("preprocess", pre), ("model", model)])

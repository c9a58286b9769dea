"""A user's training module (copied into a test's working directory): the training contract."""

import os
import time


def _pre():
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()),
         make_column_selector(dtype_include="number")),
        (make_pipeline(SimpleImputer(strategy="most_frequent"),
                       OneHotEncoder(handle_unknown="ignore")),
         make_column_selector(dtype_exclude="number")))


def classifier(train_df, params):
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X = train_df.drop(columns=[params["label"]])
    model = make_pipeline(_pre(), LogisticRegression(C=params.get("C", 1.0), max_iter=500))
    model.fit(X, train_df[params["label"]])
    # the run is active for the user's own logging
    mlflow.log_metric("user_metric", 0.5)
    print(f"user: trained on {len(X)} rows, run {os.environ.get('MLFLOW_RUN_ID')}")
    return model


def regressor(train_df, params):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline

    X = train_df.drop(columns=[params["label"]])
    model = make_pipeline(_pre(), RandomForestRegressor(n_estimators=params.get("trees", 5),
                                                        random_state=0))
    return model.fit(X, train_df[params["label"]])


class MeanModel:
    """Not a scikit-learn estimator: logged through a pyfunc wrapper."""

    def __init__(self, value):
        self.value = value

    def predict(self, X):
        return [self.value] * len(X)


def mean_model(train_df, params):
    return MeanModel(float(train_df[params["label"]].mean()))


def broken(train_df, params):
    rows = len(train_df)
    raise ValueError(f"cannot train on {rows} rows: column 'age' looks wrong")


def slow(train_df, params):
    print("user: starting a long fit", flush=True)
    time.sleep(120)
    return None

"""Training script for ``mlcd train --command "python train.py"`` (the command contract).

mlcd runs it with MLCD_TRAIN_PATH (the prepared training set), MLCD_PARAMS_PATH (a JSON
file with the params, label included), MLCD_OUTPUT_DIR (where to save the MLflow model)
and MLFLOW_RUN_ID (the active run, for extra metrics). The model takes every column but
the label and selects its own features.
"""

from __future__ import annotations

import json
import os

import mlflow
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

NUMERIC = ["area_m2", "rooms", "year_built", "garage", "distance_to_centre_km"]
CATEGORICAL = ["neighbourhood", "condition"]


def main() -> None:
    params = json.loads(open(os.environ["MLCD_PARAMS_PATH"], encoding="utf-8").read())
    label = params["label"]
    train = pd.read_parquet(os.environ["MLCD_TRAIN_PATH"])
    X, y = train.drop(columns=[label]), train[label]
    model = Pipeline([
        ("features", ColumnTransformer([
            ("num", "passthrough", NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ])),
        ("regressor", HistGradientBoostingRegressor(
            max_iter=int(params.get("max_iter", 200)),
            learning_rate=float(params.get("learning_rate", 0.08)), random_state=0)),
    ]).fit(X, y)
    mlflow.sklearn.save_model(model, os.path.join(os.environ["MLCD_OUTPUT_DIR"], "model"),
                              input_example=X.head(5), pip_requirements=["scikit-learn"])
    print(f"trained on {len(X)} rows")


if __name__ == "__main__":
    main()

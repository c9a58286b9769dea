"""A user's training script for ``mlcd train --command "python train.py"``.

MODE=save (default) saves an MLflow sklearn model to $MLCD_OUTPUT_DIR; MODE=pyfunc saves a
python_function model to a sub-directory; MODE=log logs it to the active run; MODE=fail exits
1 after printing an error.
"""

import json
import os
import sys

params = json.load(open(os.environ["MLCD_PARAMS_PATH"]))
label = params["label"]
mode = os.environ.get("MODE", "save")
if mode == "fail":
    print("script: loading features...", flush=True)
    print("script: ERROR feature store unreachable", file=sys.stderr, flush=True)
    sys.exit(1)

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import mlflow.sklearn  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import make_column_selector, make_column_transformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402

train = pd.read_parquet(os.environ["MLCD_TRAIN_PATH"])
print(f"script: {len(train)} rows, test={os.environ.get('MLCD_TEST_PATH')}", flush=True)
X = train.drop(columns=[label])
pre = make_column_transformer(
    (SimpleImputer(), make_column_selector(dtype_include="number")),
    (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
     make_column_selector(dtype_exclude="number")))
model = make_pipeline(pre, Ridge(alpha=params.get("alpha", 1.0))).fit(X, train[label])
reqs = ["scikit-learn", "pandas"]


class Shifted(mlflow.pyfunc.PythonModel):
    """A non-sklearn flavor: the pipeline's prediction plus a constant."""

    def __init__(self, inner):
        self.inner = inner

    def predict(self, context, model_input, params=None):
        return self.inner.predict(model_input) + 1.0


if mode == "pyfunc":
    mlflow.pyfunc.save_model(os.path.join(os.environ["MLCD_OUTPUT_DIR"], "pyfunc-model"),
                             python_model=Shifted(model), pip_requirements=reqs)
elif mode == "log":
    with mlflow.start_run():  # MLFLOW_RUN_ID: the run mlcd opened
        mlflow.log_metric("script_metric", 1.0)
        mlflow.sklearn.log_model(model, name="model", pip_requirements=reqs,
                                 serialization_format="cloudpickle")
else:
    mlflow.sklearn.save_model(model, os.environ["MLCD_OUTPUT_DIR"], pip_requirements=reqs,
                              serialization_format="cloudpickle")
print("script: done", flush=True)

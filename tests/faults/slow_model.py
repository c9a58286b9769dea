"""A scikit-learn-like model whose ``predict`` is slow, for interrupting a run mid-way.
Pickled into an MLflow model by tests; loaded by ``mlcd`` subprocesses (PYTHONPATH holds
the repository, so this module imports there too)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


class SlowModel:
    """Predicts 0.0 per row, sleeping ``seconds`` per call; the first call touches
    ``$MLCD_TEST_STARTED`` so a test knows when the work has begun."""

    _estimator_type = "regressor"

    def __init__(self, seconds: float = 0.5) -> None:
        self.seconds = seconds

    def fit(self, X, y):
        return self

    def predict(self, X):
        marker = os.environ.get("MLCD_TEST_STARTED")
        if marker:
            Path(marker).touch()
        time.sleep(self.seconds)
        return np.zeros(len(X))


def save(path: Path, seconds: float = 0.5) -> Path:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    X = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 2.0]})
    mlflow.sklearn.save_model(SlowModel(seconds), str(path),
                              signature=infer_signature(X, np.zeros(2)),
                              pip_requirements=["scikit-learn"], serialization_format="pickle",
                              metadata={"mlcd": {"task": "regression", "label": "y"}})
    return path

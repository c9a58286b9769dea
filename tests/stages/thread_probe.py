"""A regressor that reports, as its prediction, the most threads any native pool
(OpenMP, BLAS) of the process calling it may use, and records that process's id in
``$MLCD_TEST_PIDS`` (a folder): how ``tests/stages/test_predict_pool.py`` sees the thread
limits inside ``mlcd predict``'s worker processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


class ThreadProbe:
    _estimator_type = "regressor"

    def fit(self, X, y):
        return self

    def predict(self, X):
        from threadpoolctl import threadpool_info

        folder = os.environ.get("MLCD_TEST_PIDS")
        if folder:
            (Path(folder) / str(os.getpid())).touch()
        time.sleep(0.02)  # let every worker take chunks
        pools = threadpool_info()
        return np.full(len(X), float(max(p["num_threads"] for p in pools)) if pools else -1.0)


def save(path: Path) -> Path:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    X = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 2.0]})
    mlflow.sklearn.save_model(ThreadProbe(), str(path),
                              signature=infer_signature(X, np.zeros(2)),
                              pip_requirements=["scikit-learn"], serialization_format="pickle",
                              metadata={"mlcd": {"task": "regression", "label": "y"}})
    return path

"""Tiny MLflow models and a subprocess runner for the serve / predict tests.

Models are real scikit-learn estimators saved with ``mlflow.sklearn.save_model`` (a
signature inferred from the training frame, explicit pip requirements: fast), or
logged to a SQLite tracking store and registered when a test needs a registry URI.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PIP = ["scikit-learn"]


def frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Features a (double), b (double), c (long), color (string); customer_id; label y."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "customer_id": np.arange(1000, 1000 + n, dtype=np.int64),
        "a": rng.normal(size=n).round(6),
        "b": rng.normal(size=n).round(6),
        "c": rng.integers(0, 5, n).astype(np.int64),
        "color": rng.choice(["red", "green", "blue"], n),
    })
    df["y"] = ((df.a + df.b + (df.color == "red")) > 0.5).astype(np.int64)
    df["kind"] = np.where(df.a > 0.5, "hi", np.where(df.a < -0.5, "lo", "mid"))
    df["amount"] = (df.a * 3 + df.b + df.c * 0.5).round(6)
    return df


FEATURES = ["a", "b", "c", "color"]


def _pipeline(estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([("num", StandardScaler(), ["a", "b", "c"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"])])
    return Pipeline([("pre", pre), ("est", estimator)])


def save(model, X: pd.DataFrame, y, path: Path, *, task: str, label: str,
         metadata: dict | None = None) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    meta = {"mlcd": {"task": task, "label": label, "feature_columns": list(X.columns),
                     **({"classes": [v.item() if hasattr(v, "item") else v
                                     for v in model.classes_]} if task == "classification"
                        else {})}}
    if metadata:
        meta["mlcd"].update(metadata)
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, y),
                              pip_requirements=PIP, metadata=meta)
    return path


def binary_model(path: Path, df: pd.DataFrame | None = None, **meta) -> Path:
    from sklearn.linear_model import LogisticRegression

    df = frame() if df is None else df
    X, y = df[FEATURES], df["y"]
    return save(_pipeline(LogisticRegression()).fit(X, y), X, y, path,
                task="classification", label="y", metadata=meta or None)


def multiclass_model(path: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    df = frame()
    X, y = df[FEATURES], df["kind"]
    return save(_pipeline(LogisticRegression(max_iter=500)).fit(X, y), X, y, path,
                task="classification", label="kind")


def regression_model(path: Path) -> Path:
    from sklearn.linear_model import Ridge

    df = frame()
    X, y = df[FEATURES], df["amount"]
    return save(_pipeline(Ridge()).fit(X, y), X, y, path, task="regression", label="amount")


class WrongShape:
    """A scikit-learn-like regressor that returns one prediction too few."""

    _estimator_type = "regressor"

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(max(len(X) - 1, 0))


def wrong_shape_model(path: Path) -> Path:
    return _save_regressor(WrongShape(), path)


def _save_regressor(model, path: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    df = frame()
    X = df[FEATURES]
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, df["amount"]),
                              pip_requirements=PIP, serialization_format="pickle",
                              metadata={"mlcd": {"task": "regression", "label": "amount"}})
    return path


class Echoing(WrongShape):
    """A model that fails with the values it was given in its message."""

    def predict(self, X):
        raise RuntimeError(f"cannot score {X.to_dict(orient='records')}")


def echoing_model(path: Path) -> Path:
    return _save_regressor(Echoing(), path)


def in_process(model_path, df: pd.DataFrame):
    """What the model predicts in process for ``df`` (the reference for exactness)."""
    from mlcd_actions.models import loading as models

    m = models.load(str(model_path))
    X = models.prepare_features(df, m.label, m)
    return m.predict(X), m.predict_proba(X)


# ---------------------------------------------------------------- a served model

class Served:
    def __init__(self, proc: subprocess.Popen, base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 30):
        """``(status, headers, parsed JSON body)``; never raises on HTTP errors."""
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, dict(err.headers), json.loads(raw) if raw else None

    def post(self, obj, path: str = "/predict", **kw):
        return self.request("POST", path, json.dumps(obj).encode(), **kw)

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err


def env_for_subprocess(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCD_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["MLCD_PROGRESS"] = "0"
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(model_uri: str, port: int, *args: str, env: dict | None = None,
          startup_timeout: float = 120.0):
    """Start ``mlcd serve`` as a real subprocess on 127.0.0.1 and wait for /health."""
    cmd = [str(BIN / "mlcd"), "serve", "--model-uri", model_uri, "--host", "127.0.0.1",
           "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or env_for_subprocess())
    served = Served(proc, f"http://127.0.0.1:{port}", Path("."))
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise RuntimeError(f"mlcd serve exited {proc.returncode}\n{out}\n{err}")
            try:
                status, _, body = served.request("GET", "/health", timeout=2)
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlcd serve not healthy after {startup_timeout}s")
            time.sleep(0.2)
        yield served
    finally:
        if proc.poll() is None:
            served.stop()

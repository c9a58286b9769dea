"""A ``python_function`` model called without MLflow's per-call schema enforcement
(:mod:`mlcd_actions.delivery.serving.pyfuncpath`): taken only where it gives the answers
``PyFuncModel.predict`` gives, and never for a model that answers a row differently
inside a batch.

The models are MLflow ``PythonModel`` classes of the user's kind (a numpy scorer over
numeric, whole-number and text columns; one that normalises by its batch), saved with a
signature and an input example as ``mlflow.pyfunc.save_model`` does.
"""

from __future__ import annotations

import asyncio
import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from mlcd_actions.delivery.serving.app import ServingApp, Settings
from mlcd_actions.delivery.serving.spec import ModelSpec
from mlcd_actions.models import loading as models
from tests.delivery.serving.test_app import call
from tests.delivery.serving.test_batching import _answers as _requests
from tests.delivery.serving.test_batching import _post


class Scorer(mlflow.pyfunc.PythonModel):
    """Scores a double, a long and a text column."""

    def predict(self, context, model_input, params=None):
        x = model_input["x"].to_numpy(dtype=float)
        n = model_input["n"].to_numpy(dtype=float)
        bonus = model_input["tier"].map({"gold": 1.0, "silver": 0.5}).fillna(0.0).to_numpy()
        return (x * 2 + n - bonus).round(6)


class BatchNormalised(mlflow.pyfunc.PythonModel):
    """Subtracts the mean of the batch: a row's answer depends on the other rows."""

    def predict(self, context, model_input):
        x = model_input["x"].to_numpy(dtype=float)
        return x - x.mean()


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n).round(3),
                         "n": rng.integers(0, 9, n).astype(np.int64),
                         "tier": rng.choice(["gold", "silver", "bronze"], n)})


def _save(model, path) -> str:
    df = _frame(20)
    mlflow.pyfunc.save_model(str(path), python_model=model, input_example=df.head(3),
                             signature=infer_signature(df, model.predict(None, df)),
                             pip_requirements=["numpy", "pandas"])
    return str(path)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    path = _save(Scorer(), tmp_path_factory.mktemp("pyfunc") / "scorer")
    return ModelSpec(models.load(path))


def test_direct_path_answers_as_pyfunc_predict(scorer):
    from mlcd_actions.delivery.serving import payload

    assert scorer.direct and scorer.row_wise
    rows = json.loads(_frame(30, seed=3).to_json(orient="records"))
    batch = payload.parse(json.dumps(rows).encode(), scorer.columns)
    assert scorer._direct.accepts(batch.arrays)
    pred, proba = scorer.predict_arrays(batch.arrays, batch.n_rows)
    want = scorer.model._impl.predict(pd.DataFrame(rows))  # MLflow's own path
    assert proba is None
    assert np.array_equal(pred, np.asarray(want))


def test_values_the_direct_path_does_not_take_go_through_mlflow(scorer):
    """A null in the whole-number column (float64 with NaN: MLflow refuses it) and a null
    text (MLflow takes it) are answered by the MLflow path, as before."""
    holder = ServingApp(Settings(model_uri="unused"), scorer)
    row = json.loads(_frame(1, seed=4).to_json(orient="records"))[0]
    pyfunc = scorer.model._impl  # PyFuncModel: MLflow's own path
    status, out = asyncio.run(_post(holder.app, json.dumps([{**row, "n": None}]).encode()))
    assert status == 422 and out["field"] == "n", out
    assert "unused" not in json.dumps(out)
    status, out = asyncio.run(_post(holder.app, json.dumps([{**row, "tier": None}]).encode()))
    assert status == 200, out
    want = pyfunc.predict(pd.DataFrame([{**row, "tier": None}]))
    assert out["predictions"] == np.asarray(want).tolist()


def test_a_batch_dependent_model_is_never_batched(tmp_path):
    path = _save(BatchNormalised(), tmp_path / "norm")
    spec = ModelSpec(models.load(path))
    assert spec.direct and not spec.row_wise
    holder = ServingApp(Settings(model_uri=path, batch_max_wait_ms=50), spec)
    rows = json.loads(_frame(8, seed=5).to_json(orient="records"))
    bodies = [json.dumps(rows[i:i + 2]).encode() for i in range(0, 8, 2)]
    together, calls = _requests(holder, bodies, together=True)
    assert calls == len(bodies)
    _, _, meta = call(holder.app, "GET", "/metadata")
    assert meta["worker"]["requests"] == meta["worker"]["model_calls"] == len(bodies)
    alone, _ = _requests(holder, bodies, together=False)
    assert together == alone
    for (status, out), i in zip(together, range(0, 8, 2), strict=True):
        x = np.array([rows[i]["x"], rows[i + 1]["x"]])
        assert status == 200 and np.allclose(out["predictions"], x - x.mean())

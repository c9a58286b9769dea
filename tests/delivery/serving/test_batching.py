"""Micro-batching: concurrent requests predicted in one model call get exactly the
answers they get one by one, for every model of the benchmark matrix
(``benchmarks/matrix.py``: scaler + logistic regression, one-hot + HistGradientBoosting,
one-hot + RandomForest, TF-IDF + logistic regression, a ``python_function`` model that
is not scikit-learn), values and error rows alike.

Floats are compared with ``np.allclose(rtol=1e-12, atol=1e-12)``: BLAS may round the
last bit differently for a matrix of 1 row and one of 12 (issue 15 item 7); classes,
status codes and error bodies must be equal.
"""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest

from benchmarks import matrix
from mlcd_actions.delivery.serving.app import ServingApp, Settings
from mlcd_actions.delivery.serving.spec import ModelSpec
from mlcd_actions.models import loading as models

RTOL = ATOL = 1e-12


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as in a served worker (--threads 1)
        yield _served(tmp_path_factory)


def _served(tmp_path_factory):
    """name -> (ServingApp, validated-input rows) for each model of the matrix."""
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    root = tmp_path_factory.mktemp("matrix")
    out = {}
    for name in matrix.MODELS:
        path = matrix.build(name, root / name, rows=400)
        spec = ModelSpec(models.load(str(path)))
        holder = ServingApp(Settings(model_uri=str(path), batch_max_wait_ms=50), spec)
        rows = json.loads(matrix.inputs(name, 24, seed=5).to_json(orient="records"))
        out[name] = holder, rows
    return out


async def _post(app, body: bytes):
    sent = []
    queue = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # the connection stays open

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "path": "/predict", "raw_path": b"/predict",
             "query_string": b"", "headers": [(b"content-length", str(len(body)).encode())],
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
             "root_path": ""}
    await app(scope, receive, send)
    status = next(m for m in sent if m["type"] == "http.response.start")["status"]
    out = json.loads(b"".join(m.get("body", b"") for m in sent
                              if m["type"] == "http.response.body"))
    out.pop("request_id", None)
    return status, out


def _answers(holder: ServingApp, bodies: list[bytes], together: bool):
    async def run():
        if together:
            return await asyncio.gather(*(_post(holder.app, b) for b in bodies))
        return [await _post(holder.app, b) for b in bodies]

    calls = holder.batcher.calls
    answers = asyncio.run(run())
    return answers, holder.batcher.calls - calls


def _bad_row(name: str, row: dict) -> dict | None:
    """A row that reaches the model and makes it fail, where the model has one."""
    if name == "logreg":
        return {**row, "f0": None}          # NaN into LogisticRegression: 422
    if name == "tfidf":
        return {**row, "text": None}        # np.nan is an invalid document: 422
    return None                             # trees and the numpy scorer take NaN


def _same(a, b) -> None:
    (sa, ja), (sb, jb) = a, b
    assert sa == sb, (ja, jb)
    assert set(ja) == set(jb)
    for key in ja:
        if key == "probabilities":
            assert np.allclose(np.array(ja[key], dtype=float), np.array(jb[key], dtype=float),
                               rtol=RTOL, atol=ATOL)
        else:
            assert ja[key] == jb[key], key


@pytest.mark.parametrize("name", matrix.MODELS)
def test_batched_answers_equal_one_by_one(served, name):
    holder, rows = served[name]
    # 1-row and 3-row requests, arriving together
    bodies = [json.dumps(rows[i:i + 1]).encode() for i in range(9)]
    bodies += [json.dumps(rows[i:i + 3]).encode() for i in range(9, 24, 3)]
    together, calls = _answers(holder, bodies, together=True)
    assert calls < len(bodies) / 2, f"{calls} model calls for {len(bodies)} requests"
    alone, calls = _answers(holder, bodies, together=False)
    assert calls == len(bodies)
    assert all(status == 200 for status, _ in together)
    for a, b in zip(together, alone, strict=True):
        _same(a, b)


@pytest.mark.parametrize("name", matrix.MODELS)
def test_a_bad_row_fails_only_its_own_request(served, name):
    holder, rows = served[name]
    bad = _bad_row(name, rows[0])
    bodies = [json.dumps(rows[i:i + 2]).encode() for i in range(0, 12, 2)]
    if bad is not None:
        bodies.insert(3, json.dumps([rows[1], bad]).encode())
    bodies.insert(1, b'[{"nope": 1}]')  # refused before the model: 422 naming the column
    together, _ = _answers(holder, bodies, together=True)
    alone, _ = _answers(holder, bodies, together=False)
    for a, b in zip(together, alone, strict=True):
        _same(a, b)
    statuses = [s for s, _ in together]
    assert statuses.count(200) == 6
    assert statuses[1] == 422 and together[1][1]["field"]
    if bad is not None:
        assert statuses[4] == 422, together[4]
        assert together[4][1]["error"] == alone[4][1]["error"]


@pytest.mark.parametrize("name", matrix.MODELS)
def test_the_request_path_equals_the_model_itself(served, name):
    """What a request gets (numeric fast path, frameless ColumnTransformer, tree-by-tree
    forest, a python_function model called directly) equals the model's own predict /
    predict_proba (for pyfunc: ``PyFuncModel.predict``, schema enforcement and all)."""
    import pandas as pd

    from mlcd_actions.delivery.serving import payload

    holder, rows = served[name]
    spec = holder.spec
    expected_path = {"logreg": "fast", "hgb": "frameless", "rf": "frameless",
                     "tfidf": "frameless", "pyfunc": "direct"}[name]
    assert (spec.fast, spec.frameless, spec.direct) == (
        expected_path == "fast", expected_path == "frameless", expected_path == "direct")
    assert spec.row_wise
    batch = payload.parse(json.dumps(rows).encode(), spec.columns)
    pred, proba = spec.predict_arrays(batch.arrays, batch.n_rows)
    frame = pd.DataFrame(rows)
    impl = spec.model._impl
    assert pred.tolist() == np.asarray(impl.predict(frame)).tolist()
    if spec.model.has_proba:
        assert np.allclose(proba, impl.predict_proba(frame), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["hgb", "rf"])
def test_a_large_chunk_one_hot_encodes_like_the_model(served, name):
    """Chunks over fastpath.SMALL_BATCH rows take the vectorised one-hot encoding (what
    ``mlcd predict`` feeds), unknown categories included."""
    from mlcd_actions.delivery.serving import fastpath

    holder, _ = served[name]
    spec = holder.spec
    frame = matrix.inputs(name, fastpath.SMALL_BATCH * 3, seed=11)
    frame.loc[::7, "region"] = "nowhere"  # unknown: all zeros under handle_unknown=ignore
    pred, proba = spec.predict(frame)
    impl = spec.model._impl
    assert pred.tolist() == impl.predict(frame).tolist()
    assert np.allclose(proba, impl.predict_proba(frame), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["hgb", "rf"])
def test_a_large_chunk_with_a_value_that_is_not_text_takes_the_model_path(served, name):
    """A chunk over fastpath.SMALL_BATCH rows holding a value that is not a string in a
    one-hot column (None, a number) is refused by the frameless encoding; the answer is
    the model's own."""
    from mlcd_actions.delivery.serving import fastpath

    holder, _ = served[name]
    spec = holder.spec
    frame = matrix.inputs(name, fastpath.SMALL_BATCH * 3, seed=12)
    frame["plan"] = frame["plan"].astype(object)
    frame.loc[5, "plan"] = None
    frame.loc[70, "plan"] = 3
    arrays = {c: frame[c].to_numpy() for c in spec._frameless.columns}
    with pytest.raises(TypeError, match="'plan': a value that is not a string"):
        spec._frameless.transform(arrays, len(frame))
    pred, proba = spec.predict(frame)
    impl = spec.model._impl
    assert pred.tolist() == impl.predict(frame).tolist()
    assert np.allclose(proba, impl.predict_proba(frame), rtol=RTOL, atol=ATOL)

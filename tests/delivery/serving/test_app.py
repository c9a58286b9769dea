"""The ASGI app in process: responses, status codes and error bodies.

The same behaviour is checked against a real ``mlcd serve`` subprocess in
tests/cli/test_serve.py; here the cases that need a special model or a raw body.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from mlcd_actions.delivery.serving.app import Settings, create_app
from mlcd_actions.delivery.serving.spec import ModelSpec
from mlcd_actions.models import loading as models
from tests.delivery.serving import fixtures


def call(app, method: str, path: str, body: bytes = b"", headers: dict | None = None,
         chunks: list[bytes] | None = None):
    """Drive an ASGI app with one HTTP request; ``(status, headers, json)``."""
    hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if chunks is None:
        hdrs.append((b"content-length", str(len(body)).encode()))
        chunks = [body]
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
             for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query.encode(),
             "headers": hdrs, "scheme": "http", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 5000), "root_path": ""}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, \
        json.loads(data)


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    path = fixtures.binary_model(tmp_path_factory.mktemp("m") / "model")
    spec = ModelSpec(models.load(str(path)), version="7", lineage_id="lin-42")
    return create_app(Settings(model_uri=str(path), max_body_bytes=2000), spec), path


def test_predict_matches_the_model_in_process(binary):
    app, path = binary
    df = fixtures.frame(5)
    records = df[fixtures.FEATURES].to_dict(orient="records")
    status, headers, out = call(app, "POST", "/predict", json.dumps(records).encode(),
                                {"X-Request-ID": "abc-1"})
    assert status == 200, out
    pred, proba = fixtures.in_process(path, df)
    assert out["predictions"] == pred.tolist()
    assert out["probabilities"] == proba.tolist()
    assert out["model_version"] == "7" and out["request_id"] == "abc-1"
    assert headers["x-request-id"] == "abc-1"


def test_probabilities_can_be_left_out(binary):
    app, _ = binary
    rows = fixtures.frame(2)[fixtures.FEATURES].to_dict(orient="records")
    status, _, out = call(app, "POST", "/predict?probabilities=false", json.dumps(rows).encode())
    assert status == 200 and "probabilities" not in out and len(out["predictions"]) == 2


def test_oversized_bodies_are_413_declared_or_streamed(binary):
    app, _ = binary
    status, _, out = call(app, "POST", "/predict", b"[" + b" " * 3000 + b"]")
    assert status == 413 and "limit of 2000 bytes" in out["error"]
    status, _, out = call(app, "POST", "/predict", chunks=[b"[" + b" " * 1500, b" " * 1500 + b"]"])
    assert status == 413 and out["request_id"]


def test_values_the_model_cannot_take_are_422(binary):
    app, _ = binary
    status, _, out = call(app, "POST", "/predict",
                          b'[{"a": null, "b": 1, "c": 1, "color": "red"}]')
    assert status == 422 and out["field"] == "a", out


def test_unknown_path_and_method_are_json(binary):
    app, _ = binary
    assert call(app, "GET", "/nope")[0] == 404
    status, _, out = call(app, "GET", "/predict")
    assert status == 405 and out["error"] == "Method Not Allowed"


def test_a_failing_model_is_500_with_request_id_and_no_traceback(tmp_path):
    path = fixtures.wrong_shape_model(tmp_path / "bad")
    app = create_app(Settings(model_uri=str(path)), ModelSpec(models.load(str(path))))
    rows = fixtures.frame(3)[fixtures.FEATURES].to_dict(orient="records")
    status, headers, out = call(app, "POST", "/predict", json.dumps(rows).encode())
    assert status == 500
    assert out["request_id"] == headers["x-request-id"]
    assert "shape" in out["error"] and "Traceback" not in out["error"]
    assert set(out) == {"error", "request_id"}


def test_concurrent_requests_are_predicted_together_and_exactly(binary, monkeypatch):
    from mlcd_actions.delivery.serving import payload
    from mlcd_actions.delivery.serving.app import MicroBatcher

    _, path = binary
    spec = ModelSpec(models.load(str(path)))
    calls = []
    real = spec.predict_arrays
    monkeypatch.setattr(spec, "predict_arrays",
                        lambda arrays, n, **kw: calls.append(n) or real(arrays, n, **kw))
    df = fixtures.frame(9, seed=13)
    rows = df[fixtures.FEATURES].to_dict(orient="records")
    bodies = [json.dumps(rows[i:i + 3]).encode() for i in (0, 3, 6)]
    bad = b'[{"a": null, "b": 1, "c": 1, "color": "red"}]'

    async def scenario():
        batcher = MicroBatcher(spec)
        futs = [batcher.submit(payload.parse(b, spec.columns), True) for b in bodies]
        futs.append(batcher.submit(payload.parse(bad, spec.columns), True))
        return await asyncio.gather(*futs, return_exceptions=True)

    results = asyncio.run(scenario())
    pred, proba = fixtures.in_process(path, df)
    for k in range(3):
        got_pred, got_proba = results[k]
        assert got_pred.tolist() == pred[3 * k:3 * k + 3].tolist()
        assert np.array_equal(got_proba, proba[3 * k:3 * k + 3])
    from mlcd_actions.core.errors import DataError

    assert isinstance(results[3], DataError)  # only the request at fault gets the error
    assert calls[0] == 10  # one model call for the four requests first, then one by one


def test_pipeline_fast_path_equals_the_pipeline_methods(binary):
    _, path = binary
    spec = ModelSpec(models.load(str(path)))
    assert spec._steps is not None
    X = fixtures.frame(40, seed=17)[fixtures.FEATURES]
    pred, proba = spec.predict(X)
    impl = spec.model._impl
    assert np.array_equal(pred, impl.predict(X))
    assert np.array_equal(proba, impl.predict_proba(X))
    pred_only, none = spec.predict(X, proba=False)
    assert none is None and np.array_equal(pred_only, pred)

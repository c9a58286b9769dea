"""Bad requests to the serving API (DESIGN §6: invalid JSON, oversized requests, wrong
types, NaN/inf, unicode and very long strings, a model that returns the wrong shape), as
a table, in process through the ASGI app.

Each row: the HTTP status, the words the one-line ``error`` must hold (the field, the
row), and that the error never echoes the raw input: every bad value carries a sentinel
that must not come back in the response.
"""

from __future__ import annotations

import json

import pytest

from mlcd_actions.delivery.serving.app import Settings, create_app
from mlcd_actions.delivery.serving.spec import ModelSpec
from mlcd_actions.models import loading as models
from tests.delivery.serving import fixtures
from tests.delivery.serving.test_app import call

SENTINEL = "S3CR3T-PAYLOAD-<script>alert(1)</script>"
LIMIT = 4000


def _row(**change):
    row = {"a": 0.5, "b": -1.0, "c": 2, "color": "red"}
    row.update(change)
    return row


CASES = [
    ("not json", SENTINEL.encode(), 400, ["not valid JSON"]),
    ("truncated json", b'[{"a": 1.0, "b": "' + SENTINEL.encode(), 400, ["not valid JSON"]),
    ("json scalar", json.dumps(SENTINEL).encode(), 400, ["JSON object or array"]),
    ("unknown shape", json.dumps({"rows": [SENTINEL]}).encode(), 400, ["unknown payload"]),
    ("unknown keys", json.dumps({SENTINEL: 1}).encode(), 400, ["unknown payload", "1 key(s)"]),
    ("made-up column named twice", json.dumps({"columns": [SENTINEL, SENTINEL],
                                               "data": [[1, 2]]}).encode(), 400,
     ["a column twice"]),
    ("made-up column of another length", json.dumps(
        {"inputs": {"a": [1.0, 2.0], SENTINEL: [1]}}).encode(), 400,
     ["a column has 1 values, expected 2"]),
    ("row width with made-up columns", json.dumps(
        {"columns": ["a", SENTINEL], "data": [[1.0, 2.0, 3.0]]}).encode(), 400,
     ["3 values, expected 2 (a)"]),
    ("empty body", b"", 400, ["empty"]),
    ("empty batch", b"[]", 400, ["no rows"]),
    ("row not an object", json.dumps([SENTINEL]).encode(), 400, ["body[0]", "not string"]),
    ("missing column", json.dumps([{"a": 1.0, "b": 2.0, "c": 1}]).encode(), 422,
     ["'color'"]),
    ("wrong type string for double", json.dumps([_row(), _row(a=SENTINEL)]).encode(), 422,
     ["row 1", "'a'", "got string"]),
    ("wrong type for long", json.dumps([_row(c=SENTINEL)]).encode(), 422, ["row 0", "'c'"]),
    ("fraction for long", json.dumps([_row(c=2.5)]).encode(), 422, ["row 0", "'c'"]),
    ("number for string", json.dumps([_row(color=12345.678)]).encode(), 422,
     ["row 0", "'color'"]),
    ("null in a feature", json.dumps([_row(a=None)]).encode(), 422, ["'a'"]),
    ("NaN literal", b'[{"a": NaN, "b": 1.0, "c": 1, "color": "red"}]', 422,
     ["row 0", "'a'", "missing or infinite"]),
    ("NaN in the second row", json.dumps([_row(), _row(a=float("nan"))]).encode(), 422,
     ["row 1", "'a'", "missing or infinite"]),
    ("Infinity literal", b'[{"a": 1.0, "b": -Infinity, "c": 1, "color": "red"}]', 422,
     ["'b'"]),
    ("oversized declared", b"[" + b" " * (LIMIT + 10) + b"]", 413, [f"{LIMIT} bytes"]),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    path = fixtures.binary_model(tmp_path_factory.mktemp("badserve") / "model")
    spec = ModelSpec(models.load(str(path)), version="3", lineage_id="lin-bad")
    app = create_app(Settings(model_uri=str(path), max_body_bytes=LIMIT), spec)
    app.state.model_dir = str(path.parent)
    return app


@pytest.mark.parametrize("body, status, words", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_request(app, body, status, words):
    code, headers, out = call(app, "POST", "/predict", body)
    assert code == status, out
    assert out["request_id"] == headers["x-request-id"]
    error = out["error"]
    assert "\n" not in error and "Traceback" not in error
    for word in words:
        assert word in error, (word, out)
    assert "S3CR3T" not in json.dumps(out) and "<script>" not in json.dumps(out), out
    assert app.state.model_dir not in json.dumps(out), out  # never the model's path


def test_oversized_streamed_body_is_413_without_echo(app):
    chunk = (SENTINEL * 100).encode()
    code, _, out = call(app, "POST", "/predict", chunks=[b"[", chunk, chunk, b"]"])
    assert code == 413 and "S3CR3T" not in json.dumps(out), out


def test_unicode_and_very_long_strings_are_predicted(app):
    rows = [_row(color="女性🙂"), _row(color="ü" * 1500)]
    code, _, out = call(app, "POST", "/predict", json.dumps(rows, ensure_ascii=False).encode())
    assert code == 200, out
    assert len(out["predictions"]) == 2


def test_wrong_shape_model_is_500_one_line_no_echo(tmp_path):
    path = fixtures.wrong_shape_model(tmp_path / "bad")
    app = create_app(Settings(model_uri=str(path)), ModelSpec(models.load(str(path))))
    rows = [_row(color=SENTINEL), _row()]
    code, headers, out = call(app, "POST", "/predict", json.dumps(rows).encode())
    assert code == 500, out
    assert "shape" in out["error"] and "\n" not in out["error"]
    assert set(out) == {"error", "request_id"}
    assert "S3CR3T" not in json.dumps(out)
    assert str(tmp_path) not in json.dumps(out), out  # never the model's path


def test_raising_model_is_500_naming_only_the_exception_type(tmp_path):
    path = fixtures.echoing_model(tmp_path / "echo")
    app = create_app(Settings(model_uri=str(path)), ModelSpec(models.load(str(path))))
    code, _, out = call(app, "POST", "/predict", json.dumps([_row(color=SENTINEL)]).encode())
    assert code == 500, out
    assert out["error"] == ("model error: the model raised RuntimeError (details in the "
                            "server log)"), out
    assert "S3CR3T" not in json.dumps(out) and str(tmp_path) not in json.dumps(out), out

"""``mlcd serve`` as a user runs it: a real subprocess on 127.0.0.1, real HTTP requests."""

from __future__ import annotations

import http.client
import json
import signal

import pytest

from tests.delivery.serving import fixtures
from tests.services import free_port


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return fixtures.binary_model(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "predictions.jsonl"
    with fixtures.serve(str(model_dir), free_port(), "--workers", "1",
                        "--prediction-log", str(log),
                        "--max-body-bytes", "4096", "--model-version", "5",
                        "--lineage-id", "lin-xyz",
                        "--report-dir", str(tmp_path_factory.mktemp("rep"))) as s:
        s.log = log
        yield s


def test_health_and_metadata(server):
    status, _, body = server.request("GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["model_version"] == "5"
    status, _, meta = server.request("GET", "/metadata")
    assert status == 200
    assert meta["model_version"] == "5" and meta["lineage_id"] == "lin-xyz"
    assert meta["task"] == "classification" and meta["classes"] == [0, 1]
    assert meta["input_columns"] == fixtures.FEATURES
    assert [c["name"] for c in meta["signature"]["inputs"]] == fixtures.FEATURES
    assert {c["name"]: c["type"] for c in meta["signature"]["inputs"]}["color"] == "string"


def test_records_and_columnar_match_the_model_in_process(server, model_dir):
    df = fixtures.frame(12, seed=3)
    pred, proba = fixtures.in_process(model_dir, df)
    X = df[fixtures.FEATURES]
    payloads = [
        X.to_dict(orient="records"),
        {"dataframe_records": X.to_dict(orient="records")},
        {"columns": list(X.columns), "data": X.values.tolist()},
        {"dataframe_split": json.loads(X.to_json(orient="split", index=False))},
        {"inputs": X.to_dict(orient="list")},
    ]
    for payload in payloads:
        status, headers, out = server.post(payload)
        assert status == 200, out
        assert out["predictions"] == pred.tolist()          # exactly, not approximately
        assert out["probabilities"] == proba.tolist()
        assert out["model_version"] == "5"
        assert out["request_id"] == headers["x-request-id"]


def test_mlflow_invocations_path_works_too(server):
    row = fixtures.frame(1)[fixtures.FEATURES].to_dict(orient="records")
    status, _, out = server.post({"dataframe_records": row}, path="/invocations")
    assert status == 200 and len(out["predictions"]) == 1


@pytest.mark.parametrize("payload, field, words", [
    ([{"a": 1, "b": 2, "color": "red"}], "c", "missing column 'c'"),
    ([{"a": "one", "b": 2, "c": 1, "color": "red"}], "a", "must be a number"),
    ({"columns": ["a", "b", "c", "color"], "data": [[1, 2, 3, 4]]}, "color", "must be a string"),
])
def test_invalid_rows_are_422_naming_the_field(server, payload, field, words):
    status, _, out = server.post(payload)
    assert status == 422, out
    assert out["field"] == field and words in out["error"] and out["request_id"]


def test_invalid_json_is_400(server):
    status, _, out = server.request("POST", "/predict", b'{"dataframe_records": [')
    assert status == 400 and "not valid JSON" in out["error"]
    status, _, out = server.request("POST", "/predict", b'{"rows": []}')
    assert status == 400 and "unknown payload" in out["error"]


def test_oversized_body_is_413(server):
    big = [{"a": 1.0, "b": 2.0, "c": 1, "color": "red" * 50}] * 40
    status, _, out = server.post(big)
    assert status == 413 and "4096" in out["error"]


def test_chunked_oversized_body_is_413(server):
    conn = http.client.HTTPConnection("127.0.0.1", int(server.base.rsplit(":", 1)[1]),
                                      timeout=30)
    try:
        conn.putrequest("POST", "/predict")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("Content-Type", "application/json")
        conn.endheaders()
        for _ in range(3):
            piece = b" " * 2000
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        assert resp.status == 413
        assert "limit" in json.loads(resp.read())["error"]
    finally:
        conn.close()


def test_keep_alive_connection_serves_many_requests(server):
    conn = http.client.HTTPConnection("127.0.0.1", int(server.base.rsplit(":", 1)[1]),
                                      timeout=30)
    row = json.dumps(fixtures.frame(1)[fixtures.FEATURES].to_dict(orient="records"))
    try:
        for _ in range(20):
            conn.request("POST", "/predict", row, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
    finally:
        conn.close()


def test_prediction_log_lines_and_graceful_stop(model_dir, tmp_path):
    log = tmp_path / "pl.jsonl"
    df = fixtures.frame(3, seed=9)
    with fixtures.serve(str(model_dir), free_port(), "--workers", "1",
                        "--prediction-log", str(log),
                        "--lineage-id", "lin-1", "--report-dir", str(tmp_path / "rep")) as s:
        status, _, out = s.post(df[fixtures.FEATURES].to_dict(orient="records"),
                                headers={"X-Request-ID": "req-77"})
        assert status == 200
        code, stdout, stderr = s.stop(signal.SIGTERM)
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1].startswith("mlcd serve: passed")
    assert "served 1 requests (3 rows)" in stdout
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 3
    pred, proba = fixtures.in_process(model_dir, df)
    for i, line in enumerate(lines):
        assert list(line) == ["ts", "request_id", "row", "model_name", "model_version",
                              "lineage_id", "inputs", "prediction", "proba", "latency_ms"]
        assert line["request_id"] == "req-77" and line["row"] == i
        assert line["lineage_id"] == "lin-1" and line["model_name"] is None
        assert line["inputs"] == df[fixtures.FEATURES].iloc[i].to_dict()
        assert line["prediction"] == pred[i] and line["proba"] == proba[i, 1]
        assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0


def test_bad_model_uri_is_exit_2(mlcd, tmp_path):
    r = mlcd("serve", "--model-uri", str(tmp_path / "nothing"), "--port", str(free_port()))
    assert r.exit_code == 2, r
    assert r.verdict.startswith("mlcd serve: failed") and "no such file" in r.verdict


def test_port_in_use_is_exit_2(mlcd, model_dir):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = mlcd("serve", "--model-uri", str(model_dir), "--port", str(port))
    assert r.exit_code == 2, r
    assert f"cannot listen on 127.0.0.1:{port}" in r.verdict


def test_unwritable_prediction_log_is_exit_2(mlcd, model_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = mlcd("serve", "--model-uri", str(model_dir), "--prediction-log",
             str(blocker / "log.jsonl"))
    assert r.exit_code == 2, r
    assert "--prediction-log" in r.verdict


def test_help_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys; from mlcd_actions.cli import main; "
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['serve', '--help']); main(['predict', '--help'])\n"
            "bad = [m for m in ('pandas', 'numpy', 'sklearn', 'mlflow', 'uvicorn', 'starlette') "
            "if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=fixtures.env_for_subprocess(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""

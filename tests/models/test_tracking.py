"""tracking.is_unavailable: what is an outage (retry, exit 3) and what is a plain error."""

from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from mlcd_actions.core.errors import ServiceError
from mlcd_actions.models import tracking


def _wrapped(inner: BaseException) -> MlflowException:
    """As mlflow's rest_utils does: raise a new MlflowException inside ``except``."""
    try:
        raise inner
    except Exception as e:  # noqa: BLE001
        try:
            raise MlflowException(f"API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/get "
                                  f"failed with exception {e}")
        except MlflowException as outer:
            return outer


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Server Error", response=response)


@pytest.mark.parametrize("exc", [
    requests.exceptions.ConnectionError("boom"),
    requests.exceptions.ReadTimeout("slow"),
    ConnectionRefusedError(111, "Connection refused"),
    MlflowException("server busy", error_code=TEMPORARILY_UNAVAILABLE),
    RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"}),
    MlflowException("API request to endpoint /api/2.0/mlflow/runs/get failed with error code "
                    "502 != 200. Response body: 'Bad Gateway'", error_code=INTERNAL_ERROR),
    _wrapped(requests.exceptions.RetryError("Max retries exceeded with url: /x (Caused by "
                                            "ResponseError('too many 504 error responses'))")),
    _wrapped(requests.exceptions.ConnectionError("Failed to establish a new connection")),
    _http_error(503),
    _http_error(502),
], ids=lambda e: type(e).__name__ + ":" + str(e)[:40])
def test_outages_are_unavailable(exc):
    assert tracking.is_unavailable(exc)


@pytest.mark.parametrize("exc", [
    MlflowException("Run with id=a503b0c5021d4e0f8b504 not found",
                    error_code=RESOURCE_DOES_NOT_EXIST),
    RestException({"error_code": "RESOURCE_DOES_NOT_EXIST",
                   "message": "Run 'run-503-504-502' not found"}),
    MlflowException("Invalid value 503 for parameter 'max_results'",
                    error_code=INVALID_PARAMETER_VALUE),
    MlflowException("API request to endpoint /api/2.0/mlflow/runs/get failed with error code "
                    "400 != 200. Response body: 'run 503 bad'", error_code=BAD_REQUEST),
    MlflowException("model version 503 of 'm502' has no run"),        # INTERNAL_ERROR, no status
    ValueError("experiment 'exp-504' has 503 runs"),
    _wrapped(requests.exceptions.RetryError("Max retries exceeded with url: /x (Caused by "
                                            "ResponseError('too many 500 error responses'))")),
    _http_error(404),
    _http_error(500),
], ids=lambda e: type(e).__name__ + ":" + str(e)[:40])
def test_plain_errors_are_not_unavailable(exc):
    assert not tracking.is_unavailable(exc)


def test_with_retries_retries_outages_then_exits_3():
    calls = []

    def down():
        calls.append(1)
        raise MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE)

    with pytest.raises(ServiceError, match="unavailable while reading"):
        tracking.with_retries(down, what="reading", attempts=3, first_delay=0.01,
                              uri="http://127.0.0.1:9")
    assert len(calls) == 3


def test_with_retries_keeps_trying_for_the_window_then_exits_3(monkeypatch):
    """MLCD_TRACKING_WAIT bounds the retries by time: a server back within it succeeds."""
    import time

    monkeypatch.setenv("MLCD_TRACKING_WAIT", "1.2")
    start = time.monotonic()
    calls = []

    def down():
        calls.append(time.monotonic() - start)
        raise requests.exceptions.ConnectionError("Connection refused")

    with pytest.raises(ServiceError, match=r"unavailable while reading \(after 3 attempts in 1s\)"):
        tracking.with_retries(down, what="reading", uri="http://127.0.0.1:9")
    assert len(calls) == 3 and calls[-1] >= 1.2 - 1e-3  # at 0, 0.5, 1.2 s

    def back_on_third():
        calls.append(1)
        if len(calls) < 6:
            raise requests.exceptions.ConnectionError("Connection refused")
        return "ok"

    assert tracking.with_retries(back_on_third, what="reading", first_delay=0.01) == "ok"


@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_bad_tracking_wait_is_a_usage_error(monkeypatch, value):
    from mlcd_actions.core.errors import ConfigError

    monkeypatch.setenv("MLCD_TRACKING_WAIT", value)
    with pytest.raises(ConfigError, match="MLCD_TRACKING_WAIT"):
        tracking.with_retries(lambda: 1, what="reading")


def test_with_retries_raises_a_missing_run_at_once():
    calls = []

    def missing():
        calls.append(1)
        raise MlflowException("Run 'abc503' not found", error_code=RESOURCE_DOES_NOT_EXIST)

    with pytest.raises(MlflowException, match="abc503"):
        tracking.with_retries(missing, what="reading", attempts=3, first_delay=0.01)
    assert len(calls) == 1


def test_real_server_answering_503_is_unavailable():
    """mlflow's own REST client against a loopback server that answers 503 and 404."""
    import http.server
    import threading

    from mlflow.utils.rest_utils import MlflowHostCreds, http_request, verify_rest_response

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            status = 503 if "down" in self.path else 404
            body = b"Service Unavailable" if status == 503 else (
                b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run 503 not found"}')
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        creds = MlflowHostCreds(f"http://127.0.0.1:{server.server_port}")
        errors = {}
        for path in ("/down", "/missing"):
            try:
                resp = http_request(creds, path, "GET", max_retries=0, backoff_factor=0,
                                    timeout=5)
                verify_rest_response(resp, path)
            except Exception as exc:  # noqa: BLE001
                errors[path] = exc
        assert tracking.is_unavailable(errors["/down"]), errors["/down"]
        assert not tracking.is_unavailable(errors["/missing"]), errors["/missing"]
    finally:
        server.shutdown()
        server.server_close()

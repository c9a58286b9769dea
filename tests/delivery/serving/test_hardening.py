"""A real ``mlcd serve`` with two workers: slow and vanishing clients are answered or
dropped within ``--body-timeout`` with one log line each, and every worker runs its native
thread pools (OpenMP, BLAS) at ``--threads`` threads, as threadpoolctl reports from
inside the worker (``GET /metadata``)."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from tests.delivery.serving import fixtures
from tests.services import free_port

BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    model = fixtures.binary_model(root / "model")
    port = free_port()
    log = root / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(fixtures.BIN / "mlcd"), "serve", "--model-uri", str(model), "--port",
             str(port), "--workers", "2", "--threads", "1", "--body-timeout",
             str(BODY_TIMEOUT), "--report-dir", str(root / "rep")],
            stdout=fh, stderr=subprocess.STDOUT, env=fixtures.env_for_subprocess())
    served = fixtures.Served(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if served.request("GET", "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield served, port
    finally:
        served.stop()


def _log(served) -> str:
    return served.log.read_text(errors="replace")


def _wait_for(served, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in _log(served) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _log(served)


def _partial(port: int, declared: int, sent: bytes, rid: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + 10)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"X-Request-ID: " + rid.encode() + b"\r\n"
                 b"Content-Length: " + str(declared).encode() + b"\r\n\r\n" + sent)
    return sock


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_a_body_shorter_than_its_length_gets_408_and_the_connection_closes(server):
    served, port = server
    sock = _partial(port, 100, b'[{"a": 1', "slow-1")
    t0 = time.monotonic()
    data = _read_to_close(sock)
    waited = time.monotonic() - t0
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    assert json.loads(body)["request_id"] == "slow-1"
    assert waited < BODY_TIMEOUT + 5  # bounded by --body-timeout, not by the client
    text = _wait_for(served, "request slow-1:")
    lines = [ln for ln in text.splitlines() if "slow-1" in ln]
    assert len(lines) == 1 and "408" in lines[0] and "8 of 100 bytes" in lines[0], lines


def test_a_client_that_vanishes_leaves_one_line_and_no_traceback(server):
    served, port = server
    sock = _partial(port, 100, b'[{"a"', "gone-1")
    time.sleep(0.2)
    sock.close()
    text = _wait_for(served, "request gone-1:")
    lines = [ln for ln in text.splitlines() if "gone-1" in ln]
    assert len(lines) == 1 and "disconnected" in lines[0], lines
    assert "Traceback" not in text and "Exception in ASGI application" not in text
    assert served.request("GET", "/health")[0] == 200  # the worker still serves


def test_every_worker_runs_its_thread_pools_at_the_limit(server):
    served, _ = server
    seen: dict[int, list] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:  # new connection each time
        status, _, meta = served.request("GET", "/metadata")
        assert status == 200
        seen[meta["worker"]["pid"]] = meta["worker"]["threadpools"]
    assert len(seen) == 2, "both workers answered /metadata"
    for pools in seen.values():
        assert pools and {p["api"] for p in pools} >= {"blas"}, pools
        assert all(p["threads"] == 1 for p in pools), pools
    started = [ln for ln in _log(served).splitlines() if "native threads per worker" in ln]
    assert len(started) == 2 and all("=1 (" in ln for ln in started), started


def test_pipelined_requests_are_answered_whole_and_in_order(server):
    """Responses are written once per event-loop turn (:mod:`.http`): requests sent back
    to back on one connection still get their whole responses, in order, and a request
    that closes the connection gets its answer before the close."""
    served, port = server
    row = fixtures.frame(1)[fixtures.FEATURES].to_dict(orient="records")
    body = json.dumps(row).encode()
    wire = b"".join(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Request-ID: pipe-{i}\r\nContent-Length: {len(body)}\r\n".encode()
        + (b"Connection: close\r\n" if i == 3 else b"") + b"\r\n" + body
        for i in range(4))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(wire)
        data = _read_to_close(sock)  # the server closes after the fourth answer
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        size = int(headers["content-length"])
        answers.append((lines[0], headers["x-request-id"], json.loads(rest[:size])))
        data = rest[size:]
    assert [rid for _, rid, _ in answers] == [f"pipe-{i}" for i in range(4)]
    assert all(status == "HTTP/1.1 200 OK" and len(out["predictions"]) == 1
               for status, _, out in answers), answers

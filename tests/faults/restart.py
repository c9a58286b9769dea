"""A private ``mlflow server`` that a test restarts in the middle of a command.

:class:`Restartable` owns the server (its SQLite store and artifacts under one folder, one
fixed port). :class:`RestartingProxy` stands in front of it like a load balancer: it
forwards every request, and on the first one whose path contains ``trigger`` it kills the
server and starts it again on the same store and port in a background thread. While the
server is down the proxy answers 502 (what nginx answers when its upstream refuses).
With ``after=True`` the triggering request reaches the server first and its answer is
lost: the server applied it, the client never hears so.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.services import free_port, kill_mlflow, start_mlflow, stop


class Restartable:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc, self.uri = start_mlflow(root, self.port)
        self.restarts = 0
        self.restarted = threading.Event()
        self.error: BaseException | None = None

    def restart(self) -> None:
        """Kill the server, then start it again on the same store and port."""
        stop(self.proc)
        self.proc._mlcd_log.close()  # type: ignore[attr-defined]
        try:
            self.proc, _ = start_mlflow(self.root, self.port)
            self.restarts += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.restarted.set()

    def close(self) -> None:
        kill_mlflow(self.proc)


class RestartingProxy:
    def __init__(self, server: Restartable, trigger: str, *, after: bool = False) -> None:
        target = urlsplit(server.uri)
        proxy = self
        self.seen: list[tuple[str, str, int]] = []  # (method, path, status answered)
        self.triggered = False
        lock = threading.Lock()

        def fire() -> None:
            server.restarted.clear()
            proxy.thread = threading.Thread(target=server.restart, daemon=True)
            proxy.thread.start()
            deadline = time.monotonic() + 10  # the old process is gone before answering
            while server.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, headers=(), data: bytes = b"") -> None:
                proxy.seen.append((self.command, self.path, status))
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                with lock:
                    fire_now = not proxy.triggered and trigger in self.path
                    proxy.triggered = proxy.triggered or fire_now
                if fire_now and not after:
                    fire()
                try:
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    status, headers, data = resp.status, resp.getheaders(), resp.read()
                    conn.close()
                except OSError:
                    status, headers, data = 502, [], b"upstream unavailable"
                if fire_now and after:  # applied by the server, the answer is lost
                    fire()
                    status, headers, data = 502, [], b"upstream unavailable"
                self._answer(status, headers, data)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        self.thread: threading.Thread | None = None
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def outage_answers(self) -> int:
        return sum(1 for _, _, status in self.seen if status == 502)

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join(120)
        self._server.shutdown()
        self._server.server_close()

"""Run the app under uvicorn (httptools + uvloop when installed) with N worker processes.

With httptools, uvicorn's protocol sends each response in one write
(:mod:`.http`).

* ``workers == 1``: the app runs in this process with the model the stage already loaded.
* ``workers > 1``: uvicorn's supervisor spawns N processes sharing one listening socket;
  each loads the model at start-up (settings reach them in ``MLCD_SERVING_SETTINGS_JSON``)
  and accepts connections only once it has. A worker that dies is restarted.

SIGTERM or SIGINT stops the server gracefully: no new connections, requests in flight
finish (up to ``graceful_timeout`` seconds), the prediction log is flushed, and
:func:`serve` returns normally so the stage can print its verdict.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.delivery.serving.app import SETTINGS_ENV, ServingApp, Settings


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one clear line when the address is taken or invalid."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: cannot resolve: {exc.strerror}") from exc
    family = infos[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, *, workers: int, log_level: str, access_log: bool,
                    graceful_timeout: float, factory: bool):
    import importlib.util

    import uvicorn

    http: Any = "h11"
    if importlib.util.find_spec("httptools"):
        from mlcd_actions.delivery.serving.http import CoalescingProtocol

        http = CoalescingProtocol
    return uvicorn.Config(
        app, factory=factory, workers=workers, log_level=log_level, access_log=access_log,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=http,
        timeout_graceful_shutdown=graceful_timeout, server_header=False,
        proxy_headers=False, lifespan="on")


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          spec=None, log_level: str = "info", access_log: bool = False,
          graceful_timeout: float = 30.0, on_ready=None) -> dict[str, Any]:
    """Serve until SIGTERM/SIGINT; returns what is known about the run (requests, rows)."""
    sock = bind(host, port)
    try:
        if workers <= 1:
            holder = ServingApp(settings, spec)
            config = _uvicorn_config(holder.app, workers=1, log_level=log_level,
                                     access_log=access_log, graceful_timeout=graceful_timeout,
                                     factory=False)
            server = _QuietSignalServer(config)
            if on_ready is not None:
                on_ready()
            try:
                server.run(sockets=[sock])
            except SystemExit as exc:  # uvicorn exits when the app's start-up fails
                raise ConfigError(f"the server failed to start (uvicorn exit {exc.code}); "
                                  "see the messages above") from None
            return {"workers": 1, "requests": holder.requests, "rows": holder.rows,
                    "signal": server.stopped_by}
        from uvicorn.supervisors import Multiprocess

        os.environ[SETTINGS_ENV] = settings.to_env()
        config = _uvicorn_config("mlcd_actions.delivery.serving.app:create_app_from_env",
                                 workers=workers, log_level=log_level, access_log=access_log,
                                 graceful_timeout=graceful_timeout, factory=True)
        if on_ready is not None:
            on_ready()
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
        return {"workers": workers, "requests": None, "rows": None, "signal": None}
    finally:
        sock.close()


def _server_class():
    import uvicorn

    class QuietSignalServer(uvicorn.Server):
        """uvicorn re-raises the signal that stopped it; we return instead, so the stage
        prints its verdict and exits 0 after a graceful stop."""

        stopped_by: list[int] = []

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self.stopped_by = list(self._captured_signals)
                self._captured_signals.clear()

    return QuietSignalServer


def _QuietSignalServer(config):  # noqa: N802 - reads like the class it builds
    return _server_class()(config)

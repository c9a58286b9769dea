"""A TCP forwarder that stands for the network path to a service, and dies on cue.

:class:`CuttingProxy` listens on a loopback port and forwards every connection to the
upstream service, byte for byte. When the ``cut_at``-th occurrence of ``marker`` (e.g.
``b"PUT /"``: the n-th upload) comes from a client, it cuts everything at once before
forwarding it: the listening socket closes (new connections are refused) and every open
connection is reset. The service behind it keeps what it already received, as a real
store does when the network or its front end goes away. A new proxy on the same ``port``
brings the path back.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class CuttingProxy:
    def __init__(self, upstream_port: int, *, marker: bytes, cut_at: int,
                 port: int = 0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.marker = marker
        self.cut_at = cut_at
        self.seen = 0
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self.cut.is_set():
                    client.close()
                    server.close()
                    return
                self._socks += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client and self.marker in data:
                    with self._lock:
                        self.seen += data.count(self.marker)
                        reached = self.seen >= self.cut_at
                    if reached:
                        self.kill()
                        return
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        """Refuse new connections and reset every open one (RST, not a clean close)."""
        with self._lock:
            self.cut.set()
            socks, self._socks = self._socks, []
        with contextlib.suppress(OSError):
            self._listener.close()
        linger = struct.pack("ii", 1, 0)
        for s in socks:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv
            with contextlib.suppress(OSError):
                s.close()

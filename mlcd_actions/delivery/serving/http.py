"""uvicorn's httptools protocol with each response sent in one write.

uvicorn writes a response's status line and headers when the app sends
``http.response.start``, and the body in a second write: two ``send()`` calls and two
TCP segments per response (uvloop sets ``TCP_NODELAY``), so the client wakes twice, and
on loopback the sender pays the delivery of each. Profiled under 8 concurrent clients
(py-spy, ``mlcd serve`` on the matrix's python_function model), the header write alone
held 39 % of a worker's samples.

:class:`CoalescingProtocol` hands uvicorn a transport whose writes made in one turn of
the event loop are joined and sent at the end of that turn (``loop.call_soon``): a
response becomes one write, and the responses of one micro-batch go out in the same turn.
``close`` and ``write_eof`` send what is pending first; everything else is the real
transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Writes of one event-loop turn joined into one ``transport.write``."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

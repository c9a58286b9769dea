"""The prediction log: one JSON line per predicted row, read by ``mlcd monitor``.

Line format (fixed; ``monitor`` depends on it)::

    {"ts": "2026-11-27T17:31:55.123456+00:00", "request_id": "…", "row": 0,
     "model_name": "churn"|null, "model_version": "3"|null, "lineage_id": "…"|null,
     "inputs": {"feature": value, …}, "prediction": value,
     "proba": 0.83 | [0.1, 0.9, …] | null, "latency_ms": 1.92}

Writes stay off the request path: lines are serialised with orjson into an in-memory
buffer; a daemon thread flushes it at least every ``flush_interval`` seconds (and
sooner when it grows past ``max_buffer`` bytes), and :meth:`PredictionLog.close` flushes
the rest at shutdown. The file is opened with ``O_APPEND`` and every flush is one
``write()`` of whole lines (split at line ends when large), so several worker processes
can share one file without interleaving lines.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timezone
from typing import Any

import orjson

log = logging.getLogger("mlcd")

_WRITE_LIMIT = 1 << 20  # one write() call never exceeds this many bytes
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class PredictionLog:
    def __init__(self, path: str | os.PathLike, *, flush_interval: float = 1.0,
                 max_buffer: int = 256 * 1024) -> None:
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self._buf: list[bytes] = []
        self._size = 0
        self._interval = flush_interval
        self._max_buffer = max_buffer
        self._closed = threading.Event()
        self.lines_written = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="mlcd-prediction-log",
                                        daemon=True)
        self._thread.start()

    def record(self, *, request_id: str, model_name: str | None, model_version: str | None,
               lineage_id: str | None, inputs: list[dict[str, Any]], predictions: list,
               probas: list | None, latency_ms: float) -> None:
        """Append one line per row of a predicted batch."""
        ts = datetime.now(timezone.utc).isoformat()
        latency = round(latency_ms, 3)
        lines = []
        for i, row in enumerate(inputs):
            lines.append(orjson.dumps({
                "ts": ts, "request_id": request_id, "row": i, "model_name": model_name,
                "model_version": model_version, "lineage_id": lineage_id, "inputs": row,
                "prediction": predictions[i],
                "proba": probas[i] if probas is not None else None,
                "latency_ms": latency,
            }, default=_default, option=_DUMPS_OPTS) + b"\n")
        data = b"".join(lines)
        with self._lock:
            if self._closed.is_set():
                return
            self._buf.append(data)
            self._size += len(data)
            big = self._size >= self._max_buffer
        if big:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._buf:
                return
            data = b"".join(self._buf)
            self._buf.clear()
            self._size = 0
            try:
                self._write(data)
                self.lines_written += data.count(b"\n")
            except OSError as exc:  # disk full, file removed...: never fail a request
                self.errors += 1
                log.error("prediction log %s: write failed: %s", self.path, exc)

    def _write(self, data: bytes) -> None:
        start, n = 0, len(data)
        while start < n:
            end = n
            if n - start > _WRITE_LIMIT:  # cut at the last line end within the limit
                cut = data.rfind(b"\n", start, start + _WRITE_LIMIT)
                if cut < 0:  # one line longer than the limit: write it whole
                    cut = data.find(b"\n", start + _WRITE_LIMIT)
                end = cut + 1 if cut >= 0 else n
            view = memoryview(data)[start:end]
            while view:
                view = view[os.write(self._fd, view):]
            start = end

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            self.flush()

    def close(self) -> None:
        """Flush what is buffered and close the file (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(timeout=5)
        self.flush()
        with self._lock:
            try:
                os.close(self._fd)
            except OSError:
                pass


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if isinstance(obj, bytes):
        import base64

        return base64.b64encode(obj).decode("ascii")
    return str(obj)

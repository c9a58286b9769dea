"""The online prediction app (ASGI, Starlette): ``/health``, ``/metadata``, ``/predict``.

* ``GET /health`` — 200 ``{"status": "ok", ...}`` once the model is loaded (it is
  loaded at start-up, before the worker accepts connections).
* ``GET /metadata`` — model name, version, lineage id, run id, task, classes, input
  columns and the MLflow signature.
* ``POST /predict`` (also ``/invocations``, MLflow's path) — a batch of rows in any
  payload of :mod:`mlcd_actions.delivery.serving.payload`; answers ``{"predictions": [...],
  "probabilities": [[...], ...] (classifiers, per class in ``classes`` order),
  "model_version": ..., "request_id": ...}``.

Client errors are JSON ``{"error": ..., "field": ..., "row": ..., "request_id": ...}``
with 400 (not JSON, unknown payload), 413 (body over ``max_body_bytes``), 422 (missing
column, wrong type, values the model cannot take); never 500. A model that fails is a
500 carrying the request id and one line, never a traceback (that goes to the server
log). Every response carries ``X-Request-ID`` (the client's, when it sends a sane one).

A body that does not arrive within ``body_timeout`` seconds (a client sending less than
its ``Content-Length``, or stalling) is answered 408 and the connection closed; a client
that disconnects before its body is read gets nothing. Either leaves one log line.

The model call runs on the event loop thread: the work is CPU-bound, a thread hop
would only add latency; concurrency comes from worker processes (``--workers``, each
with its native thread pools capped, see :mod:`.threads`) and from :class:`MicroBatcher`,
which predicts the rows of requests arriving together in one model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from mlcd_actions.delivery.serving import payload
from mlcd_actions.delivery.serving.spec import ModelSpec, proba_values

log = logging.getLogger("uvicorn.error")

SETTINGS_ENV = "MLCD_SERVING_SETTINGS_JSON"  # how worker processes receive their settings
DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 5.0      # seconds to receive a request body
DEFAULT_BATCH_ROWS = 1024       # rows of concurrent requests predicted in one call
DEFAULT_BATCH_WAIT_MS = 2.0     # how long a batch waits for requests being read
_RID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_JSON = "application/json"


@dataclass
class Settings:
    model_uri: str
    tracking_uri: str | None = None
    prediction_log: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    model_name: str | None = None
    model_version: str | None = None
    lineage_id: str | None = None
    threads: int = 1
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    batch_max_rows: int = DEFAULT_BATCH_ROWS
    batch_max_wait_ms: float = DEFAULT_BATCH_WAIT_MS

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> Settings:
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start the app with `mlcd serve`")
        return cls(**json.loads(raw))


def load_spec(settings: Settings) -> ModelSpec:
    from mlcd_actions.models import loading as models

    model = models.load(settings.model_uri, tracking_uri=settings.tracking_uri)
    return ModelSpec(model, name=settings.model_name, version=settings.model_version,
                     lineage_id=settings.lineage_id)


def json_response(obj: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = {"x-request-id": request_id} if request_id else None
    return Response(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type=_JSON, headers=headers)


class ServingApp:
    """Holds the model and the prediction log of one worker process."""

    def __init__(self, settings: Settings, spec: ModelSpec | None = None) -> None:
        self.settings = settings
        self.spec = spec
        self.predlog = None
        self._batcher: MicroBatcher | None = None
        self.threads: list[dict] = []
        self.requests = 0
        self.rows = 0
        self.app = Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/metadata", self.metadata, methods=["GET"]),
                Route("/predict", self.predict, methods=["POST"]),
                Route("/invocations", self.predict, methods=["POST"]),
            ],
            exception_handlers={HTTPException: self._http_error},
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        from mlcd_actions.delivery.serving import threads

        if self.spec is None:
            self.spec = load_spec(self.settings)
        self.threads = threads.limit(self.settings.threads)
        log.info("worker %d: model %s loaded; native threads per worker: %s", os.getpid(),
                 self.settings.model_uri, threads.describe(self.threads))
        if self.settings.prediction_log:
            from mlcd_actions.delivery.serving.predlog import PredictionLog

            self.predlog = PredictionLog(self.settings.prediction_log)
        try:
            yield
        finally:
            if self.predlog is not None:
                self.predlog.close()
                log.info("prediction log %s flushed (%d lines)", self.predlog.path,
                         self.predlog.lines_written)

    @property
    def batcher(self) -> MicroBatcher:
        if self._batcher is None or self._batcher.spec is not self.spec:
            self._batcher = MicroBatcher(self.spec, max_rows=self.settings.batch_max_rows,
                                         max_wait_ms=self.settings.batch_max_wait_ms)
        return self._batcher

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        return json_response({"error": exc.detail, "path": request.url.path}, exc.status_code,
                             _request_id(request))

    async def health(self, request: Request) -> Response:
        if self.spec is None:
            return json_response({"status": "loading"}, 503)
        return json_response({"status": "ok", "model_name": self.spec.name,
                              "model_version": self.spec.version})

    async def metadata(self, request: Request) -> Response:
        if self.spec is None:
            return json_response({"error": "model not loaded yet"}, 503)
        from mlcd_actions.delivery.serving import threads

        return json_response({**self.spec.metadata(),
                              "worker": {"pid": os.getpid(), "threadpools": threads.info(),
                                         "batch_max_rows": self.settings.batch_max_rows,
                                         "batch_max_wait_ms": self.settings.batch_max_wait_ms,
                                         "requests": self.requests,
                                         "model_calls": self.batcher.calls}})

    async def predict(self, request: Request) -> Response:
        t0 = time.perf_counter()
        rid = _request_id(request)
        spec = self.spec
        if spec is None:
            return json_response({"error": "model not loaded yet", "request_id": rid}, 503, rid)
        batcher = self.batcher
        batcher.start_reading()
        try:
            body = await self._body(request, rid)
            batch = payload.parse(body, spec.columns)
        except payload.RequestError as exc:
            headers = {"x-request-id": rid}
            if exc.status == 408:
                headers["connection"] = "close"
            return Response(orjson.dumps({**exc.to_dict(), "request_id": rid}),
                            status_code=exc.status, media_type=_JSON, headers=headers)
        except ClientDisconnect:
            log.info("request %s: client disconnected before sending its body; dropped", rid)
            return Response(status_code=499)
        finally:
            batcher.done_reading()
        show_proba = request.query_params.get("probabilities", "true").lower() \
            not in ("false", "0", "no", "off")
        try:
            pred, proba = await batcher.submit(
                batch, show_proba or self.predlog is not None)
        except Exception as exc:  # noqa: BLE001 - classified: bad values vs a failing model
            return self._model_error(exc, rid)
        preds = pred.tolist()
        out: dict[str, Any] = {"predictions": preds}
        if proba is not None and show_proba:
            out["probabilities"] = proba.tolist()
        out["model_version"] = spec.version
        out["request_id"] = rid
        self.requests += 1
        self.rows += batch.n_rows
        if self.predlog is not None:
            self.predlog.record(
                request_id=rid, model_name=spec.name, model_version=spec.version,
                lineage_id=spec.lineage_id,
                inputs=[batch.row_inputs(i) for i in range(batch.n_rows)], predictions=preds,
                probas=proba_values(proba).tolist() if proba is not None else None,
                latency_ms=(time.perf_counter() - t0) * 1000.0)
        return json_response(out, 200, rid)

    def _model_error(self, exc: Exception, rid: str) -> Response:
        from mlcd_actions.core.errors import DataError

        if isinstance(exc, DataError):  # values the model cannot take (NaN in a feature...)
            body = {**_client_error(exc.one_line()), "request_id": rid}
            log.info("request %s: 422 %s", rid, body["error"])
            return json_response(body, 422, rid)
        log.error("request %s: model error", rid, exc_info=exc)
        return json_response({"error": _server_error(exc), "request_id": rid}, 500, rid)

    async def _body(self, request: Request, rid: str) -> bytes:
        """The body, within ``max_body_bytes`` (413) and ``body_timeout`` seconds (408)."""
        timeout = self.settings.body_timeout
        got = [0]
        try:
            async with asyncio.timeout(timeout):
                return await self._read_body(request, got)
        except TimeoutError:
            declared = request.headers.get("content-length")
            log.warning("request %s: body not received within %gs (%d of %s bytes); answered "
                        "408 and closed the connection", rid, timeout, got[0],
                        declared or "unknown")
            raise payload.RequestError(408, f"request body not received within {timeout:g}s "
                                            f"({got[0]} of {declared or 'unknown'} bytes)") \
                from None

    async def _read_body(self, request: Request, got: list[int]) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise payload.RequestError(400, "Content-Length is not a number") from None
            if size > limit:
                raise payload.RequestError(413, f"request body of {size} bytes is over the "
                                                f"limit of {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            got[0] = total
            if total > limit:
                raise payload.RequestError(413, f"request body is over the limit of {limit} "
                                                "bytes")
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class MicroBatcher:
    """Predict the rows of requests that arrive together in one model call.

    A request hands its validated batch to :meth:`submit` and awaits a future. The
    first submission schedules a drain a couple of event-loop turns later, so requests
    whose bytes arrived in the same turn join it. When other requests of this worker are
    still being read at that moment (:attr:`reading`), the drain waits for them, at most
    ``max_wait_ms`` after the first submission (the latency budget); it never waits when
    nothing else is in flight, so a lone request is not delayed. Requests are predicted
    together up to ``max_rows`` rows per call (grouped by identical column dtypes, so no
    request sees its columns converted; a larger request is predicted alone) and each
    gets its own slice back. Under concurrency the per-call overhead of the model (input
    validation, pandas, a forest's per-tree calls) is paid once per group instead of once
    per request. When a group's call fails, its requests are predicted one by one so only
    the request at fault gets the error.
    """

    HOPS = 2              # event-loop turns to wait for requests arriving together

    def __init__(self, spec: ModelSpec, *, max_rows: int = DEFAULT_BATCH_ROWS,
                 max_wait_ms: float = DEFAULT_BATCH_WAIT_MS) -> None:
        self.spec = spec
        self.max_rows = max(1, int(max_rows))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.reading = 0      # requests of this worker whose body is being read
        self.calls = 0        # model calls made (for tests and /metadata)
        self._pending: list[tuple[payload.Batch, bool, asyncio.Future]] = []
        self._pending_rows = 0
        self._scheduled = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start_reading(self) -> None:
        self.reading += 1

    def done_reading(self) -> None:
        """A request's body is read (or failed): a waiting drain may go now."""
        self.reading -= 1
        if self.reading == 0 and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            asyncio.get_running_loop().call_soon(self._drain)

    def submit(self, batch: payload.Batch, proba: bool) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((batch, proba, fut))
        self._pending_rows += batch.n_rows
        if not self._scheduled:
            self._scheduled = True
            self._deadline = loop.time() + self.max_wait
            loop.call_soon(self._hop, loop, self.HOPS)
        elif self._pending_rows >= self.max_rows and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            loop.call_soon(self._drain)
        return fut

    def _hop(self, loop: asyncio.AbstractEventLoop, left: int) -> None:
        if left > 0:
            loop.call_soon(self._hop, loop, left - 1)
            return
        if self.reading > 0 and self._pending_rows < self.max_rows and \
                loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._drain)
            return
        self._drain()

    def _drain(self) -> None:
        if not self._scheduled:
            return
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._pending, self._pending_rows = self._pending, [], 0
        groups: dict[tuple, list[list]] = {}
        for item in items:
            batch = item[0]
            if item[2].done():  # the client went away
                continue
            if batch.n_rows >= self.max_rows or not self.spec.row_wise:
                groups[("alone", id(item))] = [[item]]
                continue
            key = tuple((k, a.dtype.str) for k, a in batch.arrays.items())
            chunks = groups.setdefault(key, [[]])
            if sum(b.n_rows for b, _, _ in chunks[-1]) + batch.n_rows > self.max_rows:
                chunks.append([])
            chunks[-1].append(item)
        for chunks in groups.values():
            for group in chunks:
                self._run(group)

    def _run(self, group: list) -> None:
        import numpy as np

        want = any(proba for _, proba, _ in group)
        if len(group) == 1:
            self._run_one(group[0], want)
            return
        batches = [b for b, _, _ in group]
        names = list(batches[0].arrays)
        arrays = {n: np.concatenate([b.arrays[n] for b in batches]) for n in names}
        self.calls += 1
        try:
            pred, proba = self.spec.predict_arrays(arrays, sum(b.n_rows for b in batches),
                                                   proba=want)
        except Exception:  # noqa: BLE001 - find the request at fault, one by one
            for item in group:
                self._run_one(item, item[1])
            return
        start = 0
        for b, _, fut in group:
            end = start + b.n_rows
            if not fut.done():
                fut.set_result((pred[start:end], None if proba is None else proba[start:end]))
            start = end

    def _run_one(self, item, want: bool) -> None:
        batch, _, fut = item
        self.calls += 1
        try:
            result = self.spec.predict_arrays(batch.arrays, batch.n_rows, proba=want)
        except Exception as exc:  # noqa: BLE001 - handed to the request, which classifies it
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(result)


def _client_error(message: str) -> dict[str, Any]:
    """The 422 body for a value the model refused: the column and the row of the request,
    never the model's own words (they can hold the model's path or the value sent)."""
    field = re.search(r"column '([^']+)'", message)
    row = re.search(r"data row (\d+)", message)
    what = ("a missing or infinite value" if "missing or infinite" in message
            else "a value")
    out: dict[str, Any] = {}
    where = []
    if row:
        out["row"] = int(row.group(1)) - 1
        where.append(f"row {out['row']}")
    if field:
        out["field"] = field.group(1)
        where.append(f"column {out['field']!r} holds {what} the model cannot take")
    else:
        where.append(f"the request holds {what} the model cannot take")
    return {"error": ": ".join(where), **out}


def _server_error(exc: Exception) -> str:
    """The 500 line for a failing model: a wrong shape, or the type of what it raised; never
    its message, which can hold the model's path or the values sent (the server log has
    the whole error)."""
    shape = re.search(r"returned (predictions|probabilities) of shape (\([0-9, ]*\)), "
                      r"expected (\([0-9a-z, ]*\))", str(exc))
    if shape:
        return (f"model error: the model returned {shape.group(1)} of shape "
                f"{shape.group(2)}, expected {shape.group(3)}")
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return f"model error: the model raised {type(cause).__name__} (details in the server log)"


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and _RID_RE.match(given):
        return given
    return uuid.uuid4().hex


def create_app(settings: Settings, spec: ModelSpec | None = None) -> Starlette:
    """The ASGI app; ``spec`` given = model already loaded (single-process serving)."""
    return ServingApp(settings, spec).app


def create_app_from_env() -> Starlette:
    """uvicorn factory for worker processes: settings from ``MLCD_SERVING_SETTINGS_JSON``."""
    return create_app(Settings.from_env())

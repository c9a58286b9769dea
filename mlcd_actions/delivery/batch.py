"""Batch prediction pieces both engines of ``mlcd predict`` use (pandas/Arrow in
:mod:`mlcd_actions.stages.predict`, Spark in :mod:`mlcd_actions.delivery.predict_spark`):
which columns to read, the id columns, and the output columns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlcd_actions.core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from mlcd_actions.delivery.serving.spec import ModelSpec

RESERVED = ("prediction", "probability")


class Plan:
    """Which columns to read from which files, and their CSV types."""

    def __init__(self, files: list[Path], features: list[str] | None, ids: list[str],
                 label: str | None, csv_types: dict[str, str]) -> None:
        self.files = files
        self.features = features
        self.ids = ids
        self.label = label
        self.csv_types = csv_types

    def features_for(self, available: list[str]) -> list[str]:
        if self.features is None:  # no signature: the model gets every column but the label
            return [c for c in available if c != self.label]
        return list(self.features)

    def columns_for(self, available: list[str]) -> list[str]:
        wanted = self.features_for(available)
        return wanted + [c for c in self.ids if c not in wanted]


def show_cols(cols: list[str]) -> str:
    """At most 20 column names, for messages."""
    shown = ", ".join(cols[:20])
    return shown + (f", … (+{len(cols) - 20})" if len(cols) > 20 else "")


def result_columns(spec: ModelSpec, pred, proba) -> dict:
    """``prediction`` then ``probability`` (binary) or ``probability_<class>`` columns,
    the same for every engine."""
    from mlcd_actions.delivery.serving.spec import proba_values

    out = {"prediction": pred}
    if proba is not None:
        values = proba_values(proba)
        if values.ndim == 1:
            out["probability"] = values
        else:
            for j, name in enumerate(spec.proba_columns(proba)):
                out[name] = values[:, j]
    return out


def plan_columns(spec: ModelSpec, cols: list[str], id_columns: list[str] | None,
                 where: str) -> Plan:
    required = [c.name for c in spec.columns if c.required] if spec.columns else []
    missing = [c for c in required if c not in cols]
    if missing:
        raise DataError(f"{where}: feature column {missing[0]!r} that model "
                        f"{spec.model.display} needs is missing (columns: {show_cols(cols)})")
    for c in id_columns or ():
        if c not in cols:
            raise DataError(f"{where}: id column {c!r} not found (columns: {show_cols(cols)})")
    ids = list(dict.fromkeys(id_columns)) if id_columns else \
        [c for c in cols if c.lower() == "id" or c.lower().endswith("_id")]
    check_clash(ids)
    return Plan([], spec.input_names, ids, spec.model.label, {})


def check_clash(ids: list[str]) -> None:
    clash = [c for c in ids if c in RESERVED or c.startswith("probability_")]
    if clash:
        raise DataError(f"id column {clash[0]!r} would collide with an output column; "
                        "rename it or pick other --id-column values")


# ---------------------------------------------------------------- chunks over the cores

POOL_MIN_ROWS = 50_000   # below this many input rows no worker process is started
_TASK = None             # (fn, state) the forked workers call; set just before the fork


def default_workers() -> int:
    """One worker per usable CPU (affinity mask and cgroup quota)."""
    from mlcd_actions.delivery.serving.threads import usable_cpus

    return usable_cpus()


class ChunkRunner:
    """``fn(state, item)`` over ``items`` in input order, on up to ``workers`` processes.

    The workers are forked after the model is loaded, so they share it (copy on write)
    and pay no import or load (a platform without fork runs everything here); each caps
    its native thread pools (OpenMP, BLAS) at ``threads`` with threadpoolctl, so N workers
    keep N busy threads on N cores, and ignores SIGINT (the parent stops the run). At
    most ``2 * workers`` items are in flight, so memory stays bounded however long the
    input. Items are read ahead until ``min_rows`` rows (``rows_of(item)``) are seen: a
    smaller input runs in this process and starts no pool. An error in a worker is raised
    here, for the item it belongs to, after the items before it were yielded. ``used`` is
    the number of worker processes started (0: ran in this process). ``fork_lock`` (a
    lock, optional) is held while the workers fork (:class:`ReadAhead`).

    With ``cost_of(state, item)`` (CPU seconds per row of ``fn`` on a sample of the item,
    as a worker would run it) and ``min_cost``: when the first item's cost is below
    ``min_cost``, everything runs here and no pool starts, since forking, shipping items
    and answers and the workers' start would cost more than the cores save (the
    answers are the same either way). ``cost`` keeps what was measured.
    """

    def __init__(self, fn, state, *, workers: int, rows_of, min_rows: int | None = None,
                 threads: int = 1, fork_lock=None, cost_of=None,
                 min_cost: float | None = None) -> None:
        self.fn = fn
        self.state = state
        self.workers = max(1, workers)
        self.rows_of = rows_of
        self.min_rows = POOL_MIN_ROWS if min_rows is None else min_rows
        self.threads = threads
        self.fork_lock = fork_lock
        self.cost_of = cost_of
        self.min_cost = min_cost
        self.cost: float | None = None
        self.used = 0

    def map(self, items):
        items = iter(items)
        head, rows = [], 0
        if self.workers > 1:
            for item in items:
                head.append(item)
                rows += self.rows_of(item)
                if rows >= self.min_rows and len(head) > 1:
                    break
        if self.workers <= 1 or rows < self.min_rows or len(head) < 2 or not _can_fork():
            for item in [*head, *items]:
                yield self.fn(self.state, item)
            return
        if self.cost_of is not None and self.min_cost is not None:
            self.cost = self.cost_of(self.state, head[0])
            if self.cost < self.min_cost:  # the workers would cost more than they save
                for item in [*head, *items]:
                    yield self.fn(self.state, item)
                return
        yield from self._pooled(head, items)

    def _pooled(self, head: list, items):
        import contextlib
        import itertools
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        global _TASK
        _TASK = (self.fn, self.state)
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_worker_init, initargs=(self.threads,))
        self.used = self.workers
        pending: deque = deque()
        try:
            # a fork context starts every worker at the first submit: with fork_lock held,
            # a thread reading the input (ReadAhead) is not inside pyarrow as they fork
            with self.fork_lock or contextlib.nullcontext():
                pending.append(pool.submit(_worker_call, head[0]))
            for item in itertools.chain(head[1:], items):
                pending.append(pool.submit(_worker_call, item))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            _TASK = None


class ReadAhead:
    """The items of ``make_items()``, read by a thread ahead of their consumer: at most
    ``limit`` items wait, so memory stays bounded. Started before the model loads, it
    lets the input be read (pyarrow releases the GIL) while the imports and the unpickling
    hold the other core. Iterating yields the items in order; an error the reading raised
    is raised here at its place, after the items before it. :meth:`close` stops the
    thread and closes the reading generator (its open file). ``lock`` is held around each
    step of the reading: :class:`ChunkRunner` (``fork_lock``) holds it while it forks its
    workers."""

    _END = object()

    def __init__(self, make_items, limit: int) -> None:
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue(maxsize=max(1, limit))
        self._stop = threading.Event()
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(make_items,), daemon=True,
                                        name="mlcd-read-ahead")
        self._thread.start()

    def _read(self, make_items) -> None:
        items = None
        try:
            with self.lock:
                items = iter(make_items())
            while not self._stop.is_set():
                with self.lock:
                    item = next(items, self._END)
                if not self._put((item, None)) or item is self._END:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((None, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                with self.lock:
                    close()

    def _put(self, entry) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            item, exc = self._queue.get()
            if exc is not None:
                raise exc
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        import queue

        self._stop.set()
        while True:  # free a reader waiting to put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()


class Chunk:
    """A record batch that pickles as Arrow IPC: a slice of a larger batch (a CSV block
    cut into chunks) sends its own rows only, where pickling the batch itself would send
    the whole block's buffers to a worker."""

    __slots__ = ("batch",)

    def __init__(self, batch) -> None:
        self.batch = batch

    def __reduce__(self):
        return _chunk_from_ipc, (self.batch.schema, self.batch.serialize())


def _chunk_from_ipc(schema, buffer) -> Chunk:
    import pyarrow as pa

    return Chunk(pa.ipc.read_record_batch(buffer, schema))


def _can_fork() -> bool:
    """Workers are forked (they share the loaded model); where the platform has no fork
    (Windows), chunks run in this process."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _worker_init(threads: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    _die_with_parent()
    import os

    from mlcd_actions.delivery.serving.threads import environment, limit

    os.environ.update(environment(threads))
    limit(threads)


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the parent process dies (even by SIGKILL)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the executor's own shutdown still applies
        pass


def _worker_call(item):
    fn, state = _TASK
    return fn(state, item)

"""``mlcd predict``: batch predictions over a file, a directory of files or a source URI.

The input is read in bounded chunks (``pyarrow.parquet.ParquetFile.iter_batches``, the
Arrow streaming CSV reader, or a source adapter's record batches for ``http(s)://``,
``s3://`` and other registered schemes), only the columns needed: the model's input
columns (signature order) and the id columns. Each chunk is predicted and written at
once (Parquet through ``ParquetWriter``, CSV through Arrow's ``CSVWriter``, chosen by
the output extension) to a temporary file renamed over ``--output`` at the end, so
memory stays flat however large the input is and a failure leaves nothing behind.

Output columns: the id columns (``--id-column``; default every input column named
``id`` or ending in ``_id``), ``prediction``, and for classifiers ``probability`` (the
positive class of a binary classifier) or ``probability_<class>`` per class.

Errors: a missing or unreadable input, a malformed CSV, a missing feature or id column,
an unsupported extension are :class:`~mlcd_actions.core.errors.DataError` (exit 2) naming
the file and column; a model returning the wrong shape is
:class:`~mlcd_actions.core.errors.StageFailed` (exit 1, from :mod:`mlcd_actions.models.loading`).
``--engine spark`` (:mod:`mlcd_actions.delivery.predict_spark`) runs the same model over
a Spark DataFrame and writes a directory of part files; without pyspark it exits 2.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import ConfigError, DataError, first_line
from mlcd_actions.core.results import StageResult, Table
from mlcd_actions.data import tables as tabular
from mlcd_actions.delivery.batch import (
    RESERVED,
    Chunk,
    ChunkRunner,
    ReadAhead,
    default_workers,
    result_columns,
)
from mlcd_actions.delivery.batch import Plan as _Plan
from mlcd_actions.delivery.batch import check_clash as _check_clash
from mlcd_actions.delivery.batch import plan_columns as _plan_columns
from mlcd_actions.delivery.batch import show_cols as _show_cols

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcd_actions.delivery.serving.spec import Column, ModelSpec

ENGINES = ("pandas", "spark")
DEFAULT_CHUNK_ROWS = 100_000
OUTPUT_KINDS = ("parquet", "csv")
_CSV_BLOCK = 16 << 20
_READ_AHEAD_PER_WORKER = 2   # chunks read ahead of the workers (and of the model load)
# CPU seconds per row under which the default --workers runs in this process: a
# scaler + logistic regression or a numpy python_function model costs under 0.1 us a row
# (_chunk_cost) and ran 1-1.5 s slower over 2 workers at 1M rows (fork, chunks and
# answers shipped); one-hot + HistGradientBoosting costs about 5 us, a forest 8-10 us
POOL_MIN_CPU_PER_ROW = 1e-6
_COST_ROWS = 5_000           # rows of the first chunk timed for that choice
_COST_CLEAR = 0.05           # s on the fifth of them: costly beyond doubt, stop timing
# MLflow column type -> Arrow type used to read CSV columns (so every block agrees)
_ARROW_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32",
                "boolean": "bool_", "string": "string"}


def run(model_uri: str, input: str, output: str, *, engine: str = "pandas",
        chunk_rows: int = DEFAULT_CHUNK_ROWS, id_columns: list[str] | None = None,
        tracking_uri: str | None = None, progress: bool | None = None,
        spark_master: str | None = None, spark: Any = None,
        workers: int | None = None) -> StageResult:
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        raise ConfigError("--engine spark needs pyspark, which is not installed "
                          "(pip install 'mlcd-actions[spark]', or use --engine pandas)")
    if chunk_rows < 1:
        raise ConfigError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    chosen = workers is not None   # else: the pool only for a model costly enough
    workers = workers or default_workers()
    out_kind = _output_kind(output)
    remote = engine == "spark" or _is_remote(input)
    files: list[Path] = [] if remote else _input_files(input, output)

    from mlcd_actions.models import loading as models

    t_load = time.monotonic()
    # local files: read the input (pyarrow, GIL released) while the model loads, when
    # the MLmodel file already tells which columns to read and how
    early = None if remote else _early_plan(model_uri, files, id_columns)
    ahead = None if early is None else ReadAhead(
        lambda: _file_items(early, chunk_rows), _READ_AHEAD_PER_WORKER * workers)
    try:
        spec = _spec(models.load(model_uri, tracking_uri=tracking_uri))
        t0 = time.monotonic()
        if engine == "spark":
            from mlcd_actions.delivery import predict_spark

            counts, rows, ids, out_names = predict_spark.predict(
                spec, input, output, out_kind, id_columns=id_columns, batch_rows=chunk_rows,
                master=spark_master, settings=spark)
            used = None
        elif remote:
            counts, rows, out_schema, used = _predict_source(
                spec, input, output, out_kind, chunk_rows, id_columns, progress, workers,
                chosen)
            ids = [n for n in out_schema.names if n not in _result_names(out_schema)]
            out_names = out_schema.names
        else:
            plan = _plan(spec, files, id_columns)
            if ahead is not None and not _same_plan(early, plan):
                ahead.close()  # the loaded model reads other columns: read them afresh
                ahead = None
            counts, rows, out_schema, used = _predict_files(
                spec, plan, output, out_kind, chunk_rows, progress, workers, ahead, chosen)
            ids = plan.ids
            out_names = out_schema.names
    finally:
        if ahead is not None:
            ahead.close()
    seconds = time.monotonic() - t0
    result = StageResult("predict")
    result.reason = (f"{rows:,} predictions from {spec.model.display} written to {output} "
                     f"({seconds:.1f}s)")
    result.outputs = {"predictions-path": str(output), "rows": rows}
    result.metrics = {"rows": rows, "seconds": round(seconds, 3),
                      "load_seconds": round(t0 - t_load, 3),
                      "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None}
    result.artifacts = [str(output)]
    result.details = {"model_uri": model_uri, "model_name": spec.name,
                      "model_version": spec.version, "run_id": spec.run_id,
                      "lineage_id": spec.lineage_id, "engine": engine,
                      "chunk_rows": chunk_rows, "input": input,
                      "workers": used,
                      "files": [str(f) for f in files], "id_columns": ids,
                      "output_columns": out_names}
    if spec.lineage_id:
        result.lineage = {"lineage_id": spec.lineage_id}
    if counts:
        total = sum(counts.values())
        top = counts.most_common(20)
        result.tables.append(Table("Predicted classes", ["class", "rows", "share"],
                                   [[str(k), v, f"{100.0 * v / total:.1f}%"] for k, v in top],
                                   note=None if len(counts) <= 20 else
                                   f"{len(counts) - 20} more classes not shown"))
    return result


def _spec(model) -> ModelSpec:
    """:class:`ModelSpec` of the loaded model, built with a scikit-learn model's native
    thread pools at one thread: building it predicts a few rows through each fast path to
    check them, and on a few rows OpenMP's threads only wait for each other (a
    HistGradientBoosting model: 0.3-0.4 s instead of 1-6 s on a busy 2-core machine, the
    same answers)."""
    from mlcd_actions.delivery.serving.spec import ModelSpec

    if model.flavor != "sklearn":
        return ModelSpec(model)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return ModelSpec(model)


# ---------------------------------------------------------------- inputs

def _is_remote(uri: str) -> bool:
    from mlcd_actions.sources.base import scheme_of

    return scheme_of(str(uri)) != "file"


def _output_kind(output: str) -> str:
    if _is_remote(output):          # both engines write a local file (or directory)
        raise ConfigError(f"--output {output}: predict writes to a local path; copy the "
                          "result to another filesystem afterwards")
    try:
        kind = tabular.kind_of(output)
    except DataError as exc:
        raise ConfigError(f"--output {output}: {exc.message.split(': ', 1)[-1]}") from None
    suffix = Path(str(output)).suffix.lower()
    if kind not in OUTPUT_KINDS or suffix == ".txt":
        # .txt reads as CSV, but a predictions file named .txt would hide what it holds
        shown = suffix or f".{kind}"
        raise ConfigError(f"--output {output}: predict writes .parquet, .csv or .tsv, not "
                          f"{shown}")
    return kind


def _input_files(input: str, output: str) -> list[Path]:
    path = Path(input[len("file://"):] if input.startswith("file://") else input)
    files = tabular.table_files(path)
    out = Path(output).resolve()
    files = [f for f in files if f.resolve() != out]
    if not files:
        raise DataError(f"{path}: holds no input besides the output file {output}")
    for f in files:
        kind = tabular.kind_of(f)
        if kind not in ("parquet", "csv"):
            raise DataError(f"{f}: predict reads .parquet and .csv files, not .{kind}")
    return files


def _plan(spec: ModelSpec, files: list[Path], id_columns: list[str] | None) -> _Plan:
    """Check every file's columns before anything is written."""
    return _plan_of(spec.columns, spec.model.label, spec.model.display, files, id_columns)


def _plan_of(columns: list[Column] | None, label: str | None, display: str,
             files: list[Path], id_columns: list[str] | None) -> _Plan:
    features = [c.name for c in columns] if columns is not None else None
    required = [c.name for c in columns if c.required] if columns else []
    first_cols: list[str] | None = None
    for f in files:
        cols = _columns_of(f)
        if first_cols is None:
            first_cols = cols
        missing = [c for c in required if c not in cols]
        if missing:
            raise DataError(f"{f}: feature column {missing[0]!r} that model "
                            f"{display} needs is missing"
                            + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
                            + f" (columns: {_show_cols(cols)})")
        for c in id_columns or ():
            if c not in cols:
                raise DataError(f"{f}: id column {c!r} not found (columns: {_show_cols(cols)})")
    assert first_cols is not None
    if id_columns:
        ids = list(dict.fromkeys(id_columns))
    else:
        ids = [c for c in first_cols if c.lower() == "id" or c.lower().endswith("_id")]
        ids = [c for c in ids if all(c in _columns_of(f) for f in files[1:])]
    _check_clash(ids)
    csv_types = {}
    for col in columns or ():
        if col.type in _ARROW_TYPES:
            csv_types[col.name] = _ARROW_TYPES[col.type]
    return _Plan(files, features, ids, label, csv_types)


def _early_plan(model_uri: str, files: list[Path], id_columns: list[str] | None
                ) -> _Plan | None:
    """The plan a local model's ``MLmodel`` file gives before the model itself is loaded
    (its signature names the columns and their types, the ``mlcd`` metadata the label),
    so the input can be read while the model loads; None when the file does not tell
    (no named signature, a remote URI) or the plan would fail (the error is then raised
    by the plan made after the load, as without this)."""
    try:
        from types import SimpleNamespace

        from mlcd_actions.delivery.serving.spec import signature_columns
        from mlcd_actions.models import loading, mlmodel

        path = loading.local_model_dir(model_uri)
        light = mlmodel.read(path) if path is not None else None
        if light is None or light.signature is None:
            return None
        columns = signature_columns(SimpleNamespace(signature=light.signature,
                                                    input_columns=None))
        meta = light.metadata.get("mlcd")
        label = meta.get("label") if isinstance(meta, dict) else None
        return _plan_of(columns, label, model_uri, files, id_columns) if columns else None
    except Exception:  # noqa: BLE001 - any doubt: no read-ahead, the plan after the load decides
        return None


def _same_plan(a: _Plan, b: _Plan) -> bool:
    return (a.files, a.features, a.ids, a.label, a.csv_types) == \
        (b.files, b.features, b.ids, b.label, b.csv_types)


def _columns_of(path: Path) -> list[str]:
    kind = tabular.kind_of(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, delimiter=sep), None)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text at byte {exc.start}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV header: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError...
        raise DataError(f"{path}: cannot read as {kind}: {first_line(exc)}") from None
    if not header:
        raise DataError(f"{path}: file is empty (no header row)")
    return header


def _file_batches(path: Path, columns: list[str], plan: _Plan,
                  chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``chunk_rows`` rows holding ``columns``, in order."""
    import pyarrow as pa

    kind = tabular.kind_of(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            # one reader per row group: a single reader over the whole file keeps
            # memory that grows with the file (measured); this stays flat
            for rg in range(pf.num_row_groups):
                yield from pf.iter_batches(batch_size=chunk_rows, columns=columns,
                                           row_groups=[rg])
            return
        import pyarrow.csv as pcsv

        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        header = _columns_of(path)
        types = {c: getattr(pa, t)() for c, t in plan.csv_types.items() if c in columns}
        reader = pcsv.open_csv(
            path, read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK),
            parse_options=pcsv.ParseOptions(delimiter=sep),
            convert_options=pcsv.ConvertOptions(include_columns=columns, column_types=types,
                                                strings_can_be_null=True))
        for batch in reader:
            for start in range(0, batch.num_rows, chunk_rows):
                yield batch.slice(start, chunk_rows)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow's ArrowInvalid, OSError...
        if kind == "csv":
            raise DataError(f"{path}: malformed CSV: {_csv_message(exc, header)}") from None
        raise DataError(f"{path}: cannot read as {kind}: {first_line(exc)}") from None


def _csv_message(exc: BaseException, header: list[str]) -> str:
    text = first_line(exc)
    m = re.search(r"In CSV column #(\d+): ", text)
    if m and int(m.group(1)) < len(header):
        text = text.replace(m.group(0), f"column {header[int(m.group(1))]!r}: ")
    return text[:300]


# ---------------------------------------------------------------- predicting

class _Writer:
    """Chunk-by-chunk Parquet or CSV writer with a schema fixed by the first chunk."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.schema = None
        self._w = None

    def write(self, table: pa.Table) -> None:
        if self._w is None:
            self.schema = table.schema
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                from mlcd_actions.data.tables import dictionary_columns

                self._w = pq.ParquetWriter(self.path, self.schema,
                                           use_dictionary=dictionary_columns(table))
            else:
                import pyarrow.csv as pcsv

                self._w = pcsv.CSVWriter(self.path, self.schema)
        elif table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except Exception as exc:  # noqa: BLE001 - ArrowInvalid / NotImplemented
                bad = next((f.name for f in table.schema
                            if f.type != self.schema.field(f.name).type), "?")
                raise DataError(f"column {bad!r} changes type between chunks "
                                f"({self.schema.field(bad).type if bad != '?' else ''} -> "
                                f"{table.schema.field(bad).type if bad != '?' else ''}): "
                                f"{first_line(exc)}") from None
        self._w.write_table(table)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


def _predict_chunk(spec: ModelSpec, item: tuple) -> tuple[pa.Table, dict]:
    """One chunk: ``item = (Chunk, features, ids, label, where, first_row)`` -> (output
    table, class counts); ``first_row`` is the chunk's 0-based row in its file, so an
    error names the file's row. Runs in this process or in a worker of
    :class:`ChunkRunner`."""
    import numpy as np
    import pyarrow as pa

    from mlcd_actions.models import loading as models

    chunk, features, ids, label, where, first_row = item
    batch = chunk.batch
    answer = _predict_columns(spec, batch, features, label)
    if answer is None:
        frame = batch.select(features).to_pandas()
        frame = models.prepare_features(frame, label, spec.model, path=where,
                                        first_row=first_row)
        answer = spec.predict(frame)
    pred, proba = answer
    arrays = [batch.column(c) for c in ids]
    names = list(ids)
    for name, values in result_columns(spec, pred, proba).items():
        arrays.append(_to_arrow(values) if name == "prediction" else
                      pa.array(np.ascontiguousarray(values), type=pa.float64()))
        names.append(name)
    counts: dict = {}
    if spec.task == "classification" or proba is not None:
        uniq, cnt = np.unique(pred.astype(str) if pred.dtype == object else pred,
                              return_counts=True)
        counts = dict(zip(uniq.tolist(), cnt.tolist(), strict=True))
    return pa.Table.from_arrays(arrays, names=names), counts


def _predict_columns(spec: ModelSpec, batch: pa.RecordBatch, features: list[str],
                     label: str | None):
    """``spec.predict`` of the chunk's feature columns through the numeric fast path or
    the frameless one (:meth:`ModelSpec.predict_fast`), fed numpy arrays taken from Arrow
    without the pandas frame; None when that cannot give the frame path's answer, which
    then runs: a column with nulls (pandas would turn them into NaN), of another type than
    a number, a boolean or text, text where the signature wants a number (the frame path
    names the bad row), the label among the features, or a model without such a path.

    The arrays are those the frame path hands the same call: the same dtype and values
    (a numeric column zero-copy; a text column as an object array of ``str``, built from
    Arrow's dictionary encoding, so repeated values are the same object and hash once)."""
    if not (spec.fast or spec.frameless) or label in features:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlcd_actions.models.loading import NUMERIC_TYPES

    types = {c.name: c.type for c in spec.columns or ()}
    arrays = {}
    for name in features:
        col = batch.column(name)
        kind = col.type
        if col.null_count:
            return None
        if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or \
                (pa.types.is_floating(kind) and kind.bit_width >= 32):
            arrays[name] = col.to_numpy(zero_copy_only=False)
        elif (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and \
                types.get(name) not in NUMERIC_TYPES:
            codes = pc.dictionary_encode(col)
            arrays[name] = codes.dictionary.to_numpy(zero_copy_only=False)[
                codes.indices.to_numpy(zero_copy_only=False)]
        else:
            return None
    return spec.predict_fast(arrays, batch.num_rows)


def _chunk_cost(spec: ModelSpec, item: tuple) -> float:
    """CPU seconds per row :func:`_predict_chunk` spends on the chunk, as a worker runs it
    (native thread pools at one thread), on this thread's clock (other processes barely
    move it): the difference between the chunk's first :data:`_COST_ROWS` rows and its
    first fifth of them, per row of difference, so a call's fixed cost (a
    ``python_function`` model's schema checks: milliseconds), which a 100,000-row chunk
    pays once, does not count; after a call on a few rows (one-time work a first call may
    do). When the fifth alone takes :data:`_COST_CLEAR` (50 µs a row at 1,000 rows, far
    over any call's fixed cost) that is the answer, so a costly model is not predicted on
    the larger sample as well. An error gives infinity: the chunk is predicted as if
    nothing was measured, and raises there as it would have."""
    import time

    from threadpoolctl import threadpool_limits

    chunk, *rest = item
    big = min(_COST_ROWS, chunk.batch.num_rows)
    small = big // 5
    try:
        with threadpool_limits(limits=1):
            _predict_chunk(spec, (Chunk(chunk.batch.slice(0, 100)), *rest))
            spent = []
            for rows in (small, big):
                start = time.thread_time()
                _predict_chunk(spec, (Chunk(chunk.batch.slice(0, rows)), *rest))
                spent.append(time.thread_time() - start)
                if spent[0] >= _COST_CLEAR:
                    return spent[0] / max(small, 1)
    except Exception:  # noqa: BLE001 - the chunk's own prediction reports it
        return float("inf")
    if big - small < 100:  # too few rows to tell the fixed cost apart: count it all
        return spent[1] / big
    return max(0.0, spent[1] - spent[0]) / (big - small)


def _write_all(spec: ModelSpec, items, writer: _Writer, bar, workers: int, fork_lock=None,
               chosen: bool = True):
    """Predict ``items`` (chunks in input order) over ``workers`` processes, write the
    answers in input order; ``(class counts, rows, workers started)``. Unless the user
    chose ``workers`` (``chosen``), a model cheaper than :data:`POOL_MIN_CPU_PER_ROW` on
    its first chunks runs in this process (:class:`ChunkRunner`'s ``min_cost``)."""
    counts: Counter = Counter()
    rows = 0
    runner = ChunkRunner(_predict_chunk, spec, workers=workers,
                         rows_of=lambda item: item[0].batch.num_rows, fork_lock=fork_lock,
                         cost_of=None if chosen else _chunk_cost, min_cost=POOL_MIN_CPU_PER_ROW)
    for table, chunk_counts in runner.map(items):
        writer.write(table)
        counts.update(chunk_counts)
        rows += table.num_rows
        bar.update(table.num_rows)
    return counts, rows, runner.used


def _to_arrow(values) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects: keep them as text
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _result_names(schema) -> list[str]:
    return [n for n in schema.names if n in RESERVED or n.startswith("probability_")]


def _file_items(plan: _Plan, chunk_rows: int):
    """The chunks of every input file in order, as :func:`_predict_chunk` takes them."""
    for f in plan.files:
        available = _columns_of(f)
        columns = plan.columns_for(available)
        features = plan.features_for(available)
        first_row = 0
        for batch in _file_batches(f, columns, plan, chunk_rows):
            if batch.num_rows:
                yield Chunk(batch), features, plan.ids, plan.label, str(f), first_row
            first_row += batch.num_rows


def _predict_files(spec: ModelSpec, plan: _Plan, output: str, out_kind: str,
                   chunk_rows: int, progress: bool | None, workers: int,
                   ahead: ReadAhead | None = None, chosen: bool = True):
    from mlcd_actions.core.files import atomic_path
    from mlcd_actions.core.progress import Progress

    items = ahead if ahead is not None else _file_items(plan, chunk_rows)
    total = _parquet_rows(plan.files)
    with atomic_path(output) as tmp, \
            Progress("predict", total=total, enabled=progress) as bar:
        writer = _Writer(tmp, out_kind)
        try:
            counts, rows, used = _write_all(spec, items, writer, bar, workers,
                                            fork_lock=ahead.lock if ahead is not None else None,
                                            chosen=chosen)
        finally:
            writer.close()
        if rows == 0:
            raise DataError(f"{plan.files[0] if len(plan.files) == 1 else plan.files[0].parent}"
                            ": no rows to predict")
    return counts, rows, writer.schema, used


def _parquet_rows(files: list[Path]) -> int | None:
    if not all(tabular.kind_of(f) == "parquet" for f in files):
        return None
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _predict_source(spec: ModelSpec, uri: str, output: str, out_kind: str, chunk_rows: int,
                    id_columns: list[str] | None, progress: bool | None, workers: int,
                    chosen: bool = True):
    """Remote input through the source adapter registry (``mlcd_actions.sources``)."""
    from mlcd_actions.core.files import atomic_path
    from mlcd_actions.core.progress import Progress
    from mlcd_actions.sources import for_uri, mask_uri

    shown = mask_uri(uri)
    source = for_uri(uri)(progress=bool(progress))

    def items(data):
        plan = None
        first_row = 0
        for big in data.batches:
            if plan is None:
                plan = _plan_columns(spec, list(big.schema.names), id_columns, shown)
                columns = plan.columns_for(list(big.schema.names))
                features = plan.features_for(list(big.schema.names))
            for start in range(0, big.num_rows, chunk_rows):
                batch = big.slice(start, chunk_rows)
                missing = [c for c in columns if c not in batch.schema.names]
                if missing:
                    raise DataError(f"{shown}: column {missing[0]!r} missing in a later batch")
                yield (Chunk(batch.select(columns)), features, plan.ids, plan.label, shown,
                       first_row)
                first_row += batch.num_rows

    with source.open(uri) as data, atomic_path(output) as tmp, \
            Progress("predict", enabled=progress) as bar:
        writer = _Writer(tmp, out_kind)
        try:
            counts, rows, used = _write_all(spec, items(data), writer, bar, workers,
                                            chosen=chosen)
        finally:
            writer.close()
        if rows == 0:
            raise DataError(f"{shown}: no rows to predict")
    return counts, rows, writer.schema, used

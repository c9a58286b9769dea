"""``mlcd ingest``: fetch a dataset through a source adapter into a Parquet snapshot.

``run(source_uri, out)`` writes ``out/data.parquet`` and ``out/manifest.json`` together
(both or neither: they are built in a temporary directory that replaces ``out`` only on
success, so an earlier snapshot stays intact when anything fails). Record batches are
streamed from the adapter to the Parquet writer, so memory stays bounded by a row group.

Gate: an empty source (no rows) fails the stage (exit 1). Errors: a missing or malformed
input or a bad URI is exit 2, an unreachable, slow or refusing source exit 3.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions import __version__
from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.core.files import atomic_dir, sha256_file, write_json
from mlcd_actions.core.results import FAILED, StageResult, Table

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

STAGE = "ingest"
DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = "mlcd.ingest-manifest/v1"
MAX_TABLE_ROWS = 50               # columns listed in the report table
ROW_GROUP_ROWS = 1024 * 1024      # big row groups write fast and read fast...
ROW_GROUP_BYTES = 64 << 20        # ...but memory stays bounded by this much Arrow data


class _Empty(Exception):
    def __init__(self, columns: list[str]) -> None:
        super().__init__("empty")
        self.columns = columns


def run(source_uri: str, out: str | os.PathLike, *, format: str | None = None,
        query: str | None = None, endpoint_url: str | None = None,
        timeout: float | None = None, retries: int | None = None,
        headers: Iterable[str] = (), progress: bool = True) -> StageResult:
    """Ingest ``source_uri`` into ``out/data.parquet`` + ``out/manifest.json``."""
    from mlcd_actions.core.reporting import now_iso
    from mlcd_actions.sources import registry

    source_uri = (source_uri or "").strip()
    cls = registry.for_uri(source_uri)
    options = {k: v for k, v in {"format": format, "query": query, "endpoint_url": endpoint_url,
                                 "headers": tuple(headers or ())}.items()
               if v not in (None, "", ())}
    adapter = cls(timeout=timeout, retries=retries, progress=progress, **options)
    shown = adapter.describe(source_uri)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")

    started = now_iso()
    t0 = time.monotonic()
    try:
        with atomic_dir(out_dir) as tmp:
            with adapter.open(source_uri) as data:
                stats = write_snapshot(data.batches, tmp / DATA_FILE, label=shown,
                                       progress=progress)
                details = _masked(data.details)
            if stats.rows == 0:
                raise _Empty(stats.schema.names if stats.schema is not None else [])
            sha = sha256_file(tmp / DATA_FILE)
            manifest = _manifest(stats, sha, (tmp / DATA_FILE).stat().st_size, shown,
                                 cls, details, started, time.monotonic() - t0)
            write_json(tmp / MANIFEST_FILE, manifest)
    except _Empty as empty:
        cols = f", {len(empty.columns)} columns" if empty.columns else ""
        result = StageResult(STAGE, status=FAILED,
                             reason=f"{shown}: source is empty (0 rows{cols}); "
                                    f"{out_dir} left unchanged")
        result.metrics["rows"] = 0
        result.details["source"] = shown
        return result

    data_path = out_dir / DATA_FILE
    manifest_path = out_dir / MANIFEST_FILE
    result = StageResult(
        STAGE,
        reason=f"{stats.rows:,} rows × {len(stats.schema)} columns from {shown} "
               f"({cls.name}) -> {data_path}",
        metrics={"rows": stats.rows, "columns": len(stats.schema),
                 "bytes": manifest["bytes"]},
        outputs={"data-path": str(data_path), "rows": stats.rows, "sha256": sha,
                 "manifest-path": str(manifest_path)},
        artifacts=[str(data_path), str(manifest_path)],
        details={"source": shown, "adapter": cls.name, "source_details": details},
        lineage={"data_sha256": sha},
    )
    fields = manifest["fields"]
    result.tables.append(Table(
        "Columns", ["column", "dtype", "arrow type", "nulls"],
        [[c["name"], c["dtype"], c["arrow_type"], c["nulls"]] for c in fields[:MAX_TABLE_ROWS]],
        note=(f"first {MAX_TABLE_ROWS} of {len(fields)} columns; all are in {manifest_path}"
              if len(fields) > MAX_TABLE_ROWS else None)))
    for col in manifest["fields"]:
        if col["nulls"] == stats.rows:
            result.warnings.append(f"column {col['name']!r} is entirely null")
    if stats.widened:
        result.warnings.append("column types changed between batches or files and were "
                               f"widened: {', '.join(stats.widened)}")
    return result


# --------------------------------------------------------------------------- manifest

def _manifest(stats: SnapshotStats, sha: str, size: int, shown: str, cls, details: dict,
              started: str, duration: float) -> dict[str, Any]:
    dtypes = pandas_dtypes(stats.schema, stats.nulls)
    return {
        "schema": MANIFEST_SCHEMA,
        "data": DATA_FILE,
        "sha256": sha,
        "bytes": size,
        "rows": stats.rows,
        "columns": list(stats.schema.names),
        "dtypes": dtypes,
        "fields": [{"name": f.name, "dtype": dtypes[f.name], "arrow_type": str(f.type),
                    "nulls": stats.nulls.get(f.name, 0)} for f in stats.schema],
        "source": shown,
        "adapter": cls.name,
        "adapter_class": f"{cls.__module__}:{cls.__qualname__}",
        "source_details": details,
        "ingested_at": started,
        "duration_s": round(duration, 3),
        "mlcd_version": __version__,
    }


def pandas_dtypes(schema: pa.Schema, nulls: dict[str, int] | None = None) -> dict[str, str]:
    """The dtype pandas gives each column when it reads the snapshot (an int column with
    nulls reads as float64, a bool column with nulls as object)."""
    import pyarrow as pa

    nulls = nulls or {}
    out = {}
    for field in schema:
        rows = 1 if nulls.get(field.name) else 0
        frame = pa.table({field.name: pa.nulls(rows, field.type)}).to_pandas()
        out[field.name] = str(frame.dtypes.iloc[0])
    return out


def _masked(value: Any) -> Any:
    from mlcd_actions.sources.base import mask_uri

    if isinstance(value, str):
        return mask_uri(secrets.mask(value))
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


# --------------------------------------------------------------------------- writer

class SnapshotStats:
    def __init__(self) -> None:
        self.rows = 0
        self.schema: pa.Schema | None = None
        self.nulls: dict[str, int] = {}
        self.widened: list[str] = []


def write_snapshot(batches: Iterable[pa.RecordBatch], path: Path, *, label: str,
                   progress: bool = True) -> SnapshotStats:
    """Stream record batches into one Parquet file; returns rows, schema and null counts.

    Batches may disagree on columns (missing ones become null) or types (int then float,
    number then text): the schema is widened as they come, and parts written before a
    widening are rewritten to the final schema at the end, batch by batch.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcd_actions.core.progress import Progress

    stats = SnapshotStats()
    parts: list[Path] = []
    writer = None
    buffer: list[pa.RecordBatch] = []
    buffered = 0
    buffered_bytes = 0

    def flush() -> None:
        nonlocal writer, buffered, buffered_bytes
        if not buffer:
            return
        if writer is None:
            parts.append(path.with_name(f"{path.name}.part{len(parts)}"))
            writer = pq.ParquetWriter(parts[-1], stats.schema)
        writer.write_table(pa.Table.from_batches(buffer, stats.schema),
                           row_group_size=ROW_GROUP_ROWS)
        buffer.clear()
        buffered = buffered_bytes = 0

    def close() -> None:
        nonlocal writer
        flush()
        if writer is not None:
            writer.close()
            writer = None

    try:
        with Progress(f"ingest {label}", unit="rows",
                      enabled=None if progress else False) as bar:
            for batch in batches:
                _check_names(batch.schema, label)
                if stats.schema is None:
                    stats.schema = batch.schema.remove_metadata()
                else:
                    unified = unify(stats.schema, batch.schema, label)
                    if not unified.equals(stats.schema):
                        changed = [f.name for f in unified
                                   if stats.schema.get_field_index(f.name) < 0
                                   or not stats.schema.field(f.name).type.equals(f.type)]
                        stats.widened.extend(n for n in changed if n not in stats.widened
                                             and stats.schema.get_field_index(n) >= 0)
                        close()
                        stats.schema = unified
                if batch.num_rows == 0:
                    continue
                batch = align(batch, stats.schema, label)
                for name, column in zip(batch.schema.names, batch.columns, strict=False):
                    stats.nulls[name] = stats.nulls.get(name, 0) + column.null_count
                stats.rows += batch.num_rows
                buffer.append(batch)
                buffered += batch.num_rows
                buffered_bytes += batch.nbytes
                if buffered >= ROW_GROUP_ROWS or buffered_bytes >= ROW_GROUP_BYTES:
                    flush()
                bar.update(batch.num_rows)
        close()
        if stats.rows == 0:
            return stats
        for name in stats.schema.names:
            stats.nulls.setdefault(name, stats.rows)
        if len(parts) == 1 and pq.read_schema(parts[0]).equals(stats.schema):
            os.replace(parts[0], path)
            return stats
        with pq.ParquetWriter(path, stats.schema) as final:
            for part in parts:
                with pq.ParquetFile(part) as pf:
                    for b in pf.iter_batches(batch_size=ROW_GROUP_ROWS):
                        final.write_batch(align(b, stats.schema, label),
                                          row_group_size=ROW_GROUP_ROWS)
        return stats
    finally:
        if writer is not None:
            writer.close()
        for part in parts:
            if part.exists():
                part.unlink()


def _check_names(schema: pa.Schema, label: str) -> None:
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            raise DataError(f"{label}: duplicate column name {name!r}")
        seen.add(name)


def unify(a: pa.Schema, b: pa.Schema, label: str) -> pa.Schema:
    """One schema for both: columns in first-seen order, types widened (int+float ->
    float, anything+text -> text, null+T -> T)."""
    import pyarrow as pa

    fields = []
    names = list(a.names) + [n for n in b.names if a.get_field_index(n) < 0]
    for name in names:
        fa = a.field(name) if a.get_field_index(name) >= 0 else None
        fb = b.field(name) if b.get_field_index(name) >= 0 else None
        if fa is None or fb is None:
            f = fa or fb
            fields.append(pa.field(name, f.type, nullable=True))
            continue
        if fa.type.equals(fb.type):
            fields.append(fa)
            continue
        try:
            merged = pa.unify_schemas([pa.schema([fa]), pa.schema([fb])],
                                      promote_options="permissive").field(0)
            fields.append(merged)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            for t in (fa.type, fb.type):
                if pa.types.is_nested(t):
                    raise DataError(f"{label}: column {name!r} is {fa.type} in one part and "
                                    f"{fb.type} in another") from None
            fields.append(pa.field(name, pa.string(), nullable=True))
    return pa.schema(fields)


def align(batch: pa.RecordBatch, schema: pa.Schema, label: str) -> pa.RecordBatch:
    """Reorder, fill and cast a batch's columns to ``schema``."""
    import pyarrow as pa

    if batch.schema.equals(schema):
        return batch
    columns = []
    for field in schema:
        idx = batch.schema.get_field_index(field.name)
        if idx < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        col = batch.column(idx)
        if not col.type.equals(field.type):
            try:
                safe = not (pa.types.is_integer(col.type) and pa.types.is_floating(field.type))
                col = col.cast(field.type, safe=safe)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"{label}: column {field.name!r}: cannot convert {col.type} "
                                f"to {field.type}: {exc}") from exc
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, schema=schema)

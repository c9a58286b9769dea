"""Reading and writing tables, with one clear line for every way a file can be bad.

Two ways to read, one error handling (:func:`file_error` and the ``DataError`` lines):

* **Whole tables into pandas** (:func:`read_table`) for the stages: formats by extension,
  ``.parquet``/``.pq``, ``.csv``/``.tsv``, ``.jsonl``/``.ndjson``, ``.json`` (records); a
  directory reads every Parquet/CSV/JSONL file in it, in name order.
* **A stream of Arrow record batches** (:func:`iter_file_batches`) for the ingest source
  adapters: local files directly, HTTP and S3 objects after download. Memory stays
  bounded by a block (CSV, JSON lines) or a row group (Parquet); only a ``.json`` array of
  records is read whole. CSV types are inferred from the first block. When a later block
  holds a value the inferred type cannot take (``1.5`` in a column that looked like
  integers, text in a number column), the reader re-opens the file after the rows already
  read, with that one column widened, and goes on; ``ingest`` unifies the schemas when it
  writes.

Missing or unreadable input is a :class:`~mlcd_actions.core.errors.DataError` (exit 2)
naming the file (or URI). pandas and pyarrow are imported inside the functions (fast
``--help``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mlcd_actions.core.errors import DataError
from mlcd_actions.core.files import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

PARQUET = (".parquet", ".pq")
CSV = (".csv", ".tsv", ".txt")
JSONL = (".jsonl", ".ndjson")
JSON = (".json",)
TABLE_SUFFIXES = PARQUET + CSV + JSONL + JSON


def kind_of(path: str | os.PathLike) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".gz", ".bz2", ".zst", ".xz") and len(suffixes) > 1:
        suffix = suffixes[-2]
    if suffix in PARQUET:
        return "parquet"
    if suffix in CSV:
        return "csv"
    if suffix in JSONL:
        return "jsonl"
    if suffix in JSON:
        return "json"
    raise DataError(f"{path}: unknown table format {suffix or '(no extension)'!r}; "
                    "use .parquet, .csv, .jsonl or .json")


_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def local_path(path: str | os.PathLike) -> Path:
    """A local path as given, or the path of a ``file:`` URI (``file:///abs``,
    ``file://localhost/abs``, Hadoop's ``file:/abs``). Any other URI (``hdfs://``,
    ``s3a://``, ...) is a DataError: only ``--engine spark`` reads Hadoop filesystems."""
    text = os.fspath(path)
    m = _URI.match(text)
    if m is None or len(m.group(1)) == 1:          # no scheme (or a Windows drive letter)
        return Path(text)
    if m.group(1).lower() == "file":
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(text)
        if parts.netloc in ("", "localhost") and parts.path.startswith("/"):
            return Path(unquote(parts.path))
        raise DataError(f"{text}: a file: URI names an absolute local path "
                        "(file:///abs/path)")
    if "://" not in text:
        return Path(text)                           # a name with a colon, not a URI
    raise DataError(f"{text}: {m.group(1)}:// is not a local path; without --engine spark "
                    "mlcd reads local files and file:// URIs (--engine spark reads Hadoop "
                    "filesystems: validate, check-data, monitor, predict)")


def table_files(path: str | os.PathLike) -> list[Path]:
    """The table files a path stands for: itself, or the tables in a directory."""
    p = local_path(path)
    if p.is_dir():
        # a directory holds data files; a .json there is metadata (an ingest manifest)
        data_suffixes = PARQUET + CSV + JSONL
        files = sorted(f for f in p.iterdir()
                       if f.is_file() and not f.name.startswith((".", "_"))
                       and any(s.lower() in data_suffixes for s in f.suffixes))
        if not files:
            raise DataError(f"{p}: directory holds no .parquet, .csv or .jsonl files")
        return files
    if not p.exists():
        raise DataError(f"{p}: no such file")
    return [p]


def read_table(path: str | os.PathLike, *, columns: Iterable[str] | None = None,
               what: str = "data") -> pd.DataFrame:
    """Read one table (or a directory of tables) into a DataFrame."""
    import pandas as pd

    files = table_files(path)
    frames = [_read_one(f, columns) for f in files]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return df


def duplicate_columns(path: str | os.PathLike) -> list[str]:
    """Column names that appear more than once in the header of a CSV/TSV or Parquet file
    (pandas would rename them ``a.1``; ``mlcd ingest`` refuses them)."""
    import csv

    names: list[str] = []
    for f in table_files(path):
        kind = kind_of(f)
        if kind == "csv":
            with open(f, newline="", encoding="utf-8", errors="replace") as fh:
                names = next(csv.reader(fh, delimiter="\t" if f.suffix.lower() == ".tsv"
                                        else ","), [])
        elif kind == "parquet":
            import pyarrow.parquet as pq

            names = list(pq.read_schema(f).names)
        else:
            continue
        seen: set[str] = set()
        dupes = [n for n in names if n in seen or seen.add(n)]
        if dupes:
            return list(dict.fromkeys(dupes))
    return []


def _read_one(path: Path, columns) -> pd.DataFrame:
    import pandas as pd

    kind = kind_of(path)
    cols = list(columns) if columns is not None else None
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=cols).to_pandas()
        if kind == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            return pd.read_csv(path, sep=sep, usecols=cols, low_memory=False)
        if kind == "jsonl":
            df = pd.read_json(path, lines=True)
            return df[cols] if cols else df
        df = pd.read_json(path, orient="records")
        return df[cols] if cols else df
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise file_error(exc, str(path)) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {first_line(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise file_error(exc, str(path)) from exc
    except KeyError as exc:
        raise DataError(f"{path}: column {exc} not found") from exc
    except ValueError as exc:
        raise DataError(f"{path}: cannot read as {kind}: {first_line(exc)}") from exc
    except Exception as exc:  # pyarrow raises its own zoo (ArrowInvalid, OSError...)
        if type(exc).__module__.startswith("pyarrow") or isinstance(exc, OSError):
            raise DataError(f"{path}: cannot read as {kind}: {first_line(exc)}") from exc
        raise


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write atomically, format by extension (Parquet keeps dtypes; CSV for humans)."""
    target = Path(path)
    kind = kind_of(target)
    with atomic_path(target) as tmp:
        if kind == "parquet":
            df.to_parquet(tmp, index=False)
        elif kind == "csv":
            df.to_csv(tmp, index=False, sep="\t" if target.suffix.lower() == ".tsv" else ",")
        elif kind == "jsonl":
            df.to_json(tmp, orient="records", lines=True)
        else:
            df.to_json(tmp, orient="records")
    return target


def dictionary_columns(table: pa.Table, max_ratio: float = 0.5) -> list[str]:
    """Columns worth Parquet dictionary encoding: fewer distinct values than
    ``max_ratio`` of the rows (classes, categories), judged on ``table`` (a first chunk).

    Parquet writers try a dictionary for every column by default and give it up only
    after the dictionary page overflows: for unique ids and float probabilities that
    costs time and gives a larger file (1M rows of id, class, probability: 0.31 s and
    15.8 MiB by default, 0.12 s and 11.9 MiB with only the class column encoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if len(col) == 0 or pa.types.is_nested(col.type):
            continue
        if pc.count_distinct(col).as_py() <= max_ratio * len(col):
            out.append(name)
    return out


def require_columns(df: pd.DataFrame, columns: Iterable[str | None], path: str | os.PathLike,
                    role: str = "column") -> None:
    """Raise one clear line when a named column is missing."""
    for col in columns:
        if col is not None and col not in df.columns:
            shown = ", ".join(map(str, list(df.columns)[:20]))
            raise DataError(f"{path}: {role} {col!r} not found (columns: {shown})")


def file_error(exc: BaseException, label: str) -> DataError | None:
    """The one line for a file that is missing, unreadable or not text; None otherwise."""
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{label}: no such file")
    if isinstance(exc, PermissionError):
        return DataError(f"{label}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return DataError(f"{label}: is a directory")
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"{label}: not UTF-8 text at byte {exc.start}")
    return None


# --------------------------------------------------------------------------- streaming

FORMATS = ("csv", "tsv", "parquet", "jsonl", "json")
_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
COMPRESSION_SUFFIXES = _COMPRESSION = (".gz", ".bz2", ".zst", ".lz4")
_CONTENT_TYPE = {"text/csv": "csv", "application/csv": "csv",
                 "text/tab-separated-values": "tsv",
                 "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
                 "application/parquet": "parquet",
                 "application/x-ndjson": "jsonl", "application/jsonl": "jsonl",
                 "application/x-jsonlines": "jsonl", "application/jsonlines": "jsonl",
                 "application/json": "json"}
CSV_BLOCK = 4 << 20          # bytes per CSV block (type inference looks at the first one)
MAX_BLOCK = 1 << 30          # the longest CSV row we accept
PARQUET_BATCH = 64 * 1024    # rows per Parquet batch
_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error to (\w+)")
_PARSE_ERROR = re.compile(r"CSV parse error: (?P<what>[^:]+): (?P<row>.*)$", re.S)
_MAX_LINE = 300
_NAMES = {"csv": "CSV", "tsv": "TSV", "parquet": "Parquet", "jsonl": "JSON lines",
          "json": "JSON"}


def format_of(name: str, *, content_type: str | None = None, explicit: str | None = None,
              label: str | None = None) -> str:
    """The table format: ``explicit``, else by extension, else by content type."""
    if explicit:
        fmt = explicit.lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise DataError(f"unknown --format {explicit!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _SUFFIX:
        return _SUFFIX[suffixes[-1]]
    if content_type:
        base = content_type.split(";")[0].strip().lower()
        if base in _CONTENT_TYPE:
            return _CONTENT_TYPE[base]
    raise DataError(f"{label or name}: cannot tell the table format from the name"
                    f"{' or content type ' + repr(content_type) if content_type else ''}; "
                    "use --format csv|tsv|parquet|jsonl|json")


def is_table_name(name: str) -> bool:
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in _SUFFIX


def iter_file_batches(path: str | os.PathLike, fmt: str, *, label: str | None = None
                      ) -> Iterator[pa.RecordBatch]:
    """Yield the record batches of one table file; errors name ``label`` (default: path)."""
    label = label or str(path)
    readers = {"csv": _csv, "tsv": _csv, "parquet": _parquet, "jsonl": _jsonl, "json": _json}
    try:
        yield from readers[fmt](path, fmt, label)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow's ArrowInvalid/ArrowTypeError/OSError zoo
        error = file_error(exc, label)
        if error is not None:
            raise error from exc
        if type(exc).__module__.startswith(("pyarrow", "pandas")) or isinstance(
                exc, (OSError, ValueError, TypeError)):
            raise DataError(f"{label}: malformed {_NAMES[fmt]}: {first_line(exc)}",
                            file=label) from exc
        raise


def _csv(path, fmt: str, label: str) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
    column_types: dict[str, pa.DataType] = {}
    schema = None   # the schema of the last reader opened: column index -> name, type
    done = 0
    block = CSV_BLOCK
    for _ in range(256):  # each round widens one column or grows the block; bounded
        read = pcsv.ReadOptions(block_size=block, skip_rows_after_names=done)
        convert = pcsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
        reader = None
        try:
            reader = pcsv.open_csv(path, read_options=read, parse_options=parse,
                                   convert_options=convert)
            schema = reader.schema
            for field in schema:
                if pa.types.is_binary(field.type):
                    raise DataError(f"{label}: column {field.name!r} is not UTF-8 text; "
                                    "convert the file to UTF-8", file=label)
            for batch in reader:
                done += batch.num_rows
                yield batch
            if done == 0:  # a header and no rows: keep the columns for the report
                yield _empty_batch(schema)
            return
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc) and done == 0:
                return  # no header at all: an empty source
            if "straddling object" in str(exc) and block < MAX_BLOCK:
                block *= 4  # a row longer than a block: read again from where we were
                continue
            _raise_parse_error(exc, path, fmt, done, label)
            match = _CONVERSION.search(str(exc))
            if not match or schema is None:
                raise
            index, to_type = int(match.group(1)), match.group(2)
            name = schema.field(index).name
            column_types = {f.name: column_types.get(f.name, f.type) for f in schema
                            if not pa.types.is_null(column_types.get(f.name, f.type))}
            if to_type == "null":
                column_types.pop(name, None)           # infer again from the new block
            elif to_type.startswith(("int", "uint")):
                column_types[name] = pa.float64()
            else:
                column_types[name] = pa.string()
        finally:
            if reader is not None:
                reader.close()
    raise DataError(f"{label}: too many changes of column types")


def _raise_parse_error(exc: BaseException, path, fmt: str, done: int, label: str) -> None:
    """A CSV parse error as one line with the line number (the row's text stays out)."""
    parse = _PARSE_ERROR.search(str(exc))
    if parse:
        line = _line_of(path, parse["row"])
        where = f" at line {line}" if line else f" after row {done}"
        raise DataError(f"{label}: malformed {_NAMES[fmt]}{where}: {parse['what'].strip()}",
                        file=label, line=line) from exc


def _line_of(path, row: str) -> int | None:
    """The 1-based line of the file that holds ``row`` (pyarrow quotes the row, not its line)."""
    row = row.rstrip("\r\n")
    if not row or "\n" in row:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            for number, text in enumerate(fh, start=1):
                if text.rstrip("\r\n") == row:
                    return number
    except OSError:
        return None
    return None


def _parquet(path, fmt: str, label: str) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        if pf.metadata.num_rows == 0:
            yield _empty_batch(pf.schema_arrow)
            return
        yield from pf.iter_batches(batch_size=PARQUET_BATCH)


def _jsonl(path, fmt: str, label: str) -> Iterator[pa.RecordBatch]:
    """JSON lines in chunks of whole lines: each parsed by pyarrow, or line by line in
    Python when a chunk mixes types in a column (those columns become text)."""
    import io

    import pyarrow as pa
    import pyarrow.json as pjson

    first_line_no = 1
    for chunk, lines in _line_chunks(path, CSV_BLOCK):
        if not chunk:
            first_line_no += lines
            continue
        try:
            table = pjson.read_json(io.BytesIO(chunk),
                                    read_options=pjson.ReadOptions(block_size=len(chunk) + 1))
        except pa.ArrowInvalid:
            table = _jsonl_python(chunk, first_line_no, label)
        first_line_no += lines
        yield from table.to_batches()


def _line_chunks(path, size: int) -> Iterator[tuple[bytes, int]]:
    """``(bytes, line count)`` chunks of about ``size`` bytes, cut at line ends
    (``.gz``/``.bz2``/``.zst`` decompressed on the way)."""
    import pyarrow as pa

    carry = b""
    with pa.input_stream(str(path), compression="detect") as fh:
        while True:
            block = fh.read(size)
            data = carry + block
            if not block:
                if data.strip():
                    yield data, data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
                return
            cut = data.rfind(b"\n")
            if cut < 0:          # a line longer than a block: keep reading
                carry = data
                continue
            chunk, carry = data[: cut + 1], data[cut + 1:]
            if chunk.strip():
                yield chunk, chunk.count(b"\n")
            else:
                yield b"", chunk.count(b"\n")


def _jsonl_python(chunk: bytes, first_line_no: int, label: str) -> pa.Table:
    import json

    import pyarrow as pa

    rows = []
    for offset, raw in enumerate(chunk.split(b"\n")):
        if not raw.strip():
            continue
        line = first_line_no + offset
        try:
            row = json.loads(raw)
        except UnicodeDecodeError as exc:
            raise DataError(f"{label}: not UTF-8 text at line {line}", file=label,
                            line=line) from exc
        except json.JSONDecodeError as exc:
            raise DataError(f"{label}: malformed JSON lines at line {line}: {exc.msg}",
                            file=label, line=line) from exc
        if not isinstance(row, dict):
            raise DataError(f"{label}: line {line} is not a JSON object", file=label,
                            line=line)
        rows.append(row)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pa.table({name: to_arrow([row.get(name) for row in rows]) for name in names})


def to_arrow(values: list) -> pa.Array:
    """One column as Arrow; values of mixed types (SQLite, JSON) become text."""
    import json

    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else v if isinstance(v, str)
                         else json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                         for v in values], type=pa.string())


def _json(path, fmt: str, label: str) -> Iterator[pa.RecordBatch]:
    import json

    import pyarrow as pa

    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DataError(f"{label}: malformed JSON at line {exc.lineno}: {exc.msg}",
                            file=label, line=exc.lineno) from exc
    if isinstance(data, dict):  # {"data": [...]} or {"col": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(data) == 1 and lists and all(isinstance(r, dict) for r in lists[0]):
            data = lists[0]
        elif lists and len(lists) == len(data):
            yield from pa.Table.from_pydict(data).to_batches()
            return
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{label}: JSON must be an array of records (objects)")
    if data:
        yield from pa.Table.from_pylist(data).to_batches()


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema],
                                      schema=schema)


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= _MAX_LINE else text[:_MAX_LINE] + "…"

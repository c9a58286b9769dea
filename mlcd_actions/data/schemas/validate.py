"""Validating data against a loaded schema for ``mlcd validate`` (:func:`validate`).

pandera-on-pandas, but one column at a time, read column by column from Parquet with
pyarrow (the next column is read while the current one is checked). Every column check
sees the whole column, so failure semantics are pandera's (uniqueness and aggregate checks
included) and row indices are global, while peak memory is about two columns instead of a
copy of the whole frame. Dataframe-wide checks (schema ``checks:``, multi-column
``unique:``) read the columns they need together.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlcd_actions.core.errors import ConfigError, DataError, first_line

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa
from mlcd_actions.data.schemas.load import LoadedSchema, check_key

SAMPLE_ROWS = 5          # row indices kept per failing check
MAX_VALUE_CHARS = 40     # failing values quoted in reports are cut to this length
# pandera check names that are properties of the column, not entries of its checks
_STRUCTURAL = {"column_in_dataframe", "column_in_schema", "column_ordered",
               "dataframe_column_labels_unique"}


@dataclass
class FailureGroup:
    """Every failure of one check on one column, aggregated."""

    column: str | None
    check: str
    context: str
    count: int = 0
    rows: list[Any] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    message: str = ""
    schema_key: str | None = None    # the schema's name for the column (a regex may differ)


@dataclass
class Outcome:
    rows: int
    columns: list[str]
    checked: list[str]
    groups: list[FailureGroup]
    engine: str

    @property
    def valid(self) -> bool:
        return not self.groups

    @property
    def failures(self) -> int:
        return sum(g.count for g in self.groups)


class ColumnSource(Protocol):
    """Column-wise access to a table: ``frame(columns)`` gives a pandas frame."""

    path: str
    names: list[str]
    rows: int
    engine: str

    def frame(self, columns: list[str]) -> pd.DataFrame: ...


class FrameSource:
    engine = "pandas"

    def __init__(self, df: pd.DataFrame, path: str) -> None:
        self.df = df
        self.path = path
        self.names = [str(c) for c in df.columns]
        self._labels = {str(c): c for c in df.columns}
        self.rows = len(df)

    def frame(self, columns: list[str]) -> pd.DataFrame:
        return self.df[[self._labels[c] for c in columns]]


class ParquetSource:
    """One or more Parquet files, read one column (or a few) at a time with pyarrow."""

    engine = "pyarrow columns"

    def __init__(self, files: list[Path], path: str) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.files = []
        names: list[str] | None = None
        rows = 0
        for f in files:
            try:
                pf = pq.ParquetFile(f)
            except Exception as exc:  # noqa: BLE001 - pyarrow's ArrowInvalid, OSError...
                raise DataError(f"{f}: cannot read as parquet: {first_line(exc)}") from exc
            these = [n for n in pf.schema_arrow.names if not _is_index_column(pf, n)]
            if names is None:
                names = these
            elif these != names:
                raise DataError(f"{f}: columns {these[:10]} differ from {files[0]}'s {names[:10]}")
            rows += pf.metadata.num_rows
            self.files.append(pf)
        self.names = names or []
        self.rows = rows

    def table(self, columns: list[str]) -> pa.Table:
        import pyarrow as pa

        tables = []
        for pf in self.files:
            try:
                tables.append(pf.read(columns=columns, use_pandas_metadata=len(self.files) == 1))
            except Exception as exc:  # noqa: BLE001 - corrupt pages surface only here
                raise DataError(f"{self.path}: cannot read column(s) "
                                f"{', '.join(columns)}: {first_line(exc)}") from exc
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def frame(self, columns: list[str]) -> pd.DataFrame:
        import pandas as pd

        df = self.table(columns).to_pandas()
        if len(self.files) > 1 and not isinstance(df.index, pd.RangeIndex):
            df = df.reset_index(drop=True)
        return df


def _is_index_column(pf: Any, name: str) -> bool:
    meta = pf.schema_arrow.pandas_metadata or {}
    return any(isinstance(c, str) and c == name for c in meta.get("index_columns", []))


def open_source(path: str | os.PathLike) -> ColumnSource:
    """A column source for ``path``: Parquet column by column, anything else via pandas."""
    from mlcd_actions.data import tables as tabular

    files = tabular.table_files(path)
    kinds = {tabular.kind_of(f) for f in files}
    if kinds == {"parquet"}:
        return ParquetSource(files, str(path))
    return FrameSource(tabular.read_table(path), str(path))


def validate(source: ColumnSource, loaded: LoadedSchema, *,
             progress: Callable[[int], None] | None = None) -> Outcome:
    """Validate every column of ``source`` against ``loaded.schema`` (pandera, lazy)."""
    schema = loaded.schema
    groups: dict[tuple, FailureGroup] = {}
    _structure(source, loaded, groups)       # 1. presence, strictness, order
    plan = _plan(schema, source.names)
    _columns(source, loaded, plan, groups, progress)   # 2. one column at a time
    _frame_wide(source, schema, groups)      # 3. multi-column uniqueness, dataframe checks
    key_for = {name: str(column.name) for name, column in plan}
    for g in groups.values():
        g.schema_key = key_for.get(g.column, g.column) if g.column is not None else None
    ordered = sorted(groups.values(), key=lambda g: (_order(g.column, source.names), g.check))
    return Outcome(source.rows, source.names, [name for name, _ in plan], ordered,
                   source.engine)


def _structure(source: ColumnSource, loaded: LoadedSchema,
               groups: dict[tuple, FailureGroup]) -> None:
    """Presence, strictness and order, from the column names alone."""
    import pandas as pd
    import pandera.pandas as pa

    empty = pd.DataFrame({n: pd.Series([], dtype="object") for n in source.names})
    if len(set(source.names)) != len(source.names):
        empty = pd.DataFrame(columns=source.names)
    try:
        loaded.schema.validate(empty, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        _collect(exc, groups, only=_STRUCTURAL)
    except pa.errors.SchemaError as exc:
        if str(getattr(exc, "check", "")) in _STRUCTURAL:
            _collect(exc, groups)
    except pa.errors.SchemaDefinitionError as exc:
        raise ConfigError(f"{loaded.file}: invalid pandera schema: {first_line(exc)}",
                          file=loaded.file) from exc


def _columns(source: ColumnSource, loaded: LoadedSchema, plan: list[tuple[str, Any]],
             groups: dict[tuple, FailureGroup],
             progress: Callable[[int], None] | None) -> None:
    """One column at a time; the next column is read while the current one is checked."""
    import pandera.pandas as pa

    schema = loaded.schema
    first = True
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlcd-read") as pool:
        pending = pool.submit(source.frame, [plan[0][0]]) if plan else None
        for i, (name, column) in enumerate(plan):
            frame = pending.result()
            pending = pool.submit(source.frame, [plan[i + 1][0]]) if i + 1 < len(plan) else None
            sub = pa.DataFrameSchema(
                columns={name if not column.regex else column.name: column},
                index=schema.index if first else None,
                dtype=schema.dtype, coerce=schema.coerce, strict=False,
                name=schema.name, report_duplicates=getattr(schema, "report_duplicates", "all"),
            )
            first = False
            try:
                sub.validate(frame, lazy=True, inplace=True)
            except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
                _collect(exc, groups)
            except pa.errors.SchemaDefinitionError as exc:
                raise ConfigError(f"{loaded.file}: column {name!r}: invalid pandera schema: "
                                  f"{first_line(exc)}", file=loaded.file,
                                  line=loaded.line_of(name)) from exc
            del frame
            if progress:
                progress(1)
        if pending is not None:
            pending.cancel()


def _frame_wide(source: ColumnSource, schema: Any, groups: dict[tuple, FailureGroup]) -> None:
    """Multi-column uniqueness and dataframe checks, reading the columns they need."""
    import pandera.pandas as pa

    present = [n for n in _schema_names(schema, source.names) if n in source.names]
    unique = schema.unique
    if unique:
        cols = [unique] if isinstance(unique, str) else list(unique)
        if all(c in source.names for c in cols):
            part = pa.DataFrameSchema(unique=cols, report_duplicates=schema.report_duplicates)
            try:
                part.validate(source.frame(cols), lazy=True, inplace=True)
            except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
                _collect(exc, groups)
    if schema.checks and present:
        whole = pa.DataFrameSchema(columns={n: _cast_only(schema.columns.get(n)) for n in present
                                            if n in schema.columns},
                                   checks=schema.checks, coerce=schema.coerce, strict=False)
        try:
            whole.validate(source.frame(present), lazy=True, inplace=True)
        except pa.errors.SchemaErrors as exc:
            _collect(exc, groups, only=None, skip_columns=True)
        except pa.errors.SchemaError as exc:
            _collect(exc, groups)


def _cast_only(column: Any) -> Any:
    """The column with its dtype/coercion only (its own checks already ran)."""
    import pandera.pandas as pa

    if column is None:
        return pa.Column(required=False)
    return pa.Column(column.dtype, nullable=True, coerce=column.coerce, required=False,
                     name=column.name)


def _plan(schema: Any, names: list[str]) -> list[tuple[str, Any]]:
    """(data column, schema column) pairs to validate, regex columns expanded."""
    import pandas as pd

    plan: list[tuple[str, Any]] = []
    seen: set[str] = set()
    index = pd.Index(names)
    for key, column in schema.columns.items():
        if getattr(column, "regex", False):
            matches = [str(n) for n in index[index.str.match(str(key))]] if len(index) else []
        else:
            matches = [key] if key in names else []
        for n in matches:
            if n not in seen:
                seen.add(n)
                plan.append((n, column))
    return plan


def _schema_names(schema: Any, names: list[str]) -> list[str]:
    return [n for n, _ in _plan(schema, names)]


def _order(column: str | None, names: list[str]) -> int:
    if column is None:
        return -1
    try:
        return names.index(column)
    except ValueError:
        return len(names)


def _collect(exc: Exception, groups: dict[tuple, FailureGroup], *, only: set[str] | None = None,
             skip_columns: bool = False) -> None:
    """Aggregate pandera's failure cases into one group per (column, check)."""
    import pandera.pandas as pa

    if isinstance(exc, pa.errors.SchemaError):
        fc = exc.failure_cases
        errors = [exc]
        if fc is None or not hasattr(fc, "columns"):
            check = str(getattr(exc, "check", None) or getattr(exc, "reason_code", "") or "schema")
            column = getattr(getattr(exc, "schema", None), "name", None)
            _add(groups, column, check, "Column", 1, [], [_short(fc)], exc)
            return
        import pandas as pd

        fc = pd.DataFrame(fc).copy()
        if "index" not in fc.columns:
            fc["index"] = None
        fc["column"] = getattr(getattr(exc, "schema", None), "name", None)
        fc["check"] = str(getattr(exc, "check", "") or "")
        fc["schema_context"] = "Column"
        frame = fc
    else:
        frame = exc.failure_cases
        errors = list(getattr(exc, "schema_errors", []) or [])
    messages: dict[tuple, str] = {}
    for err in errors:
        col = getattr(getattr(err, "schema", None), "name", None)
        check = str(getattr(err, "check", "") or "")
        if hasattr(getattr(err, "check", None), "name"):
            check = str(err.check)
        messages.setdefault((col, check_key(check)), " ".join(str(err).split())[:300])
    if frame is None or len(frame) == 0:
        return
    for (context, column, check), part in frame.groupby(
            [frame["schema_context"].astype(str), frame["column"].astype(object),
             frame["check"].astype(str)], dropna=False, sort=False):
        if only is not None and check not in only:
            continue
        if isinstance(column, float) and math.isnan(column):
            column = None
        values = part["failure_case"].tolist()
        if check in _STRUCTURAL and column is None and values:
            # column_in_dataframe & co. name the column in failure_case: one group per column
            for v in values:
                _add(groups, str(v), check, context, 1, [], [], None,
                     messages.get((str(v), check_key(check))) or messages.get((None, check_key(check))))
            continue
        if skip_columns and context != "DataFrameSchema":
            continue
        idx = part["index"]
        rows = [_plain(i) for i in idx.head(SAMPLE_ROWS * 4).tolist() if not _isnull(i)]
        rows = sorted(set(rows), key=_row_sort_key)[:SAMPLE_ROWS]
        count = int(len(part))
        sample = [_short(v) for v in part["failure_case"].head(SAMPLE_ROWS).tolist()]
        msg = messages.get((column, check_key(check))) or ""
        _add(groups, column, check, context, count, rows, sample, None, msg)


def _add(groups: dict, column, check: str, context: str, count: int, rows: list, values: list,
         exc: Exception | None, message: str | None = None) -> None:
    key = (column, check)
    g = groups.get(key)
    if g is None:
        g = groups[key] = FailureGroup(column, check, context)
    g.count += count
    for r in rows:
        if len(g.rows) < SAMPLE_ROWS and r not in g.rows:
            g.rows.append(r)
    for v in values:
        if len(g.values) < SAMPLE_ROWS:
            g.values.append(v)
    if not g.message:
        g.message = message or (" ".join(str(exc).split())[:300] if exc is not None else "")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _row_sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _isnull(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except (TypeError, ValueError):
        return False


def _short(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def structure(source: Any, loaded: LoadedSchema, groups: dict[tuple, FailureGroup]) -> None:
    """Presence, strictness and order failures from ``source.names`` alone (no data is
    read): shared with the Spark engine (:mod:`mlcd_actions.data.spark.validate`)."""
    _structure(source, loaded, groups)


def plan(schema: Any, names: list[str]) -> list[tuple[str, Any]]:
    """(data column, schema column) pairs to validate, regex columns expanded."""
    return _plan(schema, names)

"""pandera schemas for ``mlcd validate`` and ``mlcd schema infer``.

* **Loading** (:func:`load_schema`): a pandera YAML/JSON schema (pandera's own format,
  :mod:`pandera.io`), a Python ``DataFrameModel`` or ``DataFrameSchema`` named as
  ``pkg.module:Name``, ``path/to/schemas.py`` or ``path/to/schemas.py:Name``. The result
  knows the file and line of every column and check (:meth:`LoadedSchema.line_of`), so a
  failure becomes an annotation on the schema line that declared it.
* **Inference** (:func:`infer_schema`, :func:`render_yaml`): pandera's ``infer_schema``
  plus allowed categories for low-cardinality strings, rendered as pandera YAML with
  comments a person can read and edit.
* **Validation** (:func:`validate`): pandera-on-pandas, but one column at a time, read
  column by column from Parquet with pyarrow (the next column is read while the current
  one is checked). Every column check sees the whole column, so failure semantics are
  pandera's (uniqueness and aggregate checks included) and row indices are global,
  while peak memory is about two columns instead of a copy of the whole frame.
  Dataframe-wide checks (schema ``checks:``, multi-column ``unique:``) read the columns
  they need together.

pandas, pyarrow and pandera are imported inside functions (fast ``--help``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlcd_actions.core.errors import ConfigError, DataError, first_line

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
PY_SUFFIXES = (".py",)
SAMPLE_ROWS = 5          # row indices kept per failing check
MAX_VALUE_CHARS = 40     # failing values quoted in reports are cut to this length
# pandera check names that are properties of the column, not entries of its checks
_PROPERTY_KEYS = {
    "not_nullable": "nullable",
    "field_uniqueness": "unique",
    "dataframe_column_labels_unique": "unique_column_names",
    "column_in_schema": "strict",
    "column_ordered": "ordered",
    "multiple_fields_uniqueness": "unique",
    "duplicates": "unique",
}
# structural failures found on the column names alone
_STRUCTURAL = {"column_in_dataframe", "column_in_schema", "column_ordered",
               "dataframe_column_labels_unique"}


# --------------------------------------------------------------------------- loading

@dataclass
class LoadedSchema:
    """A pandera ``DataFrameSchema`` and where each part of it was written."""

    schema: Any                      # pandera.api.pandas.container.DataFrameSchema
    file: str                        # shown in annotations (as given by the user)
    kind: str                        # "yaml" | "json" | "python"
    lines: dict[tuple[str | None, str | None], int] = field(default_factory=dict)

    def line_of(self, column: str | None, check: str | None = None) -> int | None:
        """The line of ``check`` under ``column`` (or of the column, or of the schema)."""
        key = check_key(check) if check else None
        for probe in ((column, key), (column, None), (None, key), (None, None)):
            if probe in self.lines:
                return self.lines[probe]
        return None


def check_key(check: str | None) -> str | None:
    """``'in_range(0, 9)'`` -> ``'in_range'``; ``'dtype('int64')'`` -> ``'dtype'``;
    ``'not_nullable'`` -> ``'nullable'`` (the key that declares it in the schema file)."""
    if not check:
        return None
    name = str(check).split("(", 1)[0].strip()
    if name == "coerce_dtype":
        return "dtype"
    return _PROPERTY_KEYS.get(name, name)


def load_schema(spec: str) -> LoadedSchema:
    """Load ``spec`` (a YAML/JSON file, a ``.py`` file, or ``module:Name``)."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("--schema is empty")
    path_part, _, name = spec.partition(":") if not _is_windows_drive(spec) else (spec, "", "")
    suffix = Path(path_part).suffix.lower()
    if suffix in YAML_SUFFIXES + JSON_SUFFIXES:
        return _load_serialized(Path(spec))
    if suffix in PY_SUFFIXES:
        return _load_python_file(Path(path_part), name or None, spec)
    if name and re.fullmatch(r"[A-Za-z_][\w.]*", path_part) and re.fullmatch(r"[A-Za-z_]\w*", name):
        return _load_python_module(path_part, name, spec)
    raise ConfigError(f"--schema {spec!r}: expected a .yaml/.yml/.json pandera schema, a .py file "
                      "or 'package.module:ModelName'")


def _is_windows_drive(spec: str) -> bool:
    return bool(re.match(r"^[A-Za-z]:[\\/]", spec))


def _load_serialized(path: Path) -> LoadedSchema:
    import yaml

    if not path.exists():
        raise ConfigError(f"{path}: no such schema file", file=str(path))
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a schema file", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: schema is not UTF-8 text (byte {exc.start})",
                          file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read schema: {exc.strerror or exc}",
                          file=str(path)) from exc
    kind = "json" if path.suffix.lower() in JSON_SUFFIXES else "yaml"
    if kind == "json":
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}",
                              file=str(path), line=exc.lineno) from exc
        try:                                    # line numbers: JSON is (nearly always) YAML
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None
    else:
        node = data = None
    try:
        if kind == "yaml":
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f" at line {line}" if line else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed {kind.upper()}{where}: {problem}",
                          file=str(path), line=line) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a pandera schema must be a mapping with 'columns:', "
                          f"got {type(data).__name__}", file=str(path), line=1)
    lines = _yaml_lines(node)
    if data.get("schema_type", "dataframe") != "dataframe":
        raise ConfigError(f"{path}: schema_type {data.get('schema_type')!r} is not supported; "
                          "use 'dataframe'", file=str(path), line=lines.get((None, "schema_type")))
    columns = data.get("columns")
    if columns is not None and not isinstance(columns, (dict, list)):
        raise ConfigError(f"{path}: 'columns' must be a mapping of column name to its checks",
                          file=str(path), line=lines.get((None, "columns")))
    if isinstance(columns, dict):
        for col, stats in columns.items():
            if stats is not None and not isinstance(stats, dict):
                raise ConfigError(f"{path}: column {col!r} must map to its properties "
                                  f"(dtype, nullable, checks), got {stats!r}",
                                  file=str(path), line=lines.get((str(col), None)))
            if stats is None:
                columns[col] = {}
            else:
                _check_keys(stats, path, lines, str(col))
    _check_top_keys(data, path, lines)
    schema = _deserialize(data, path, lines)
    return LoadedSchema(schema, str(path), kind, lines)


_COLUMN_KEYS = {"title", "description", "dtype", "nullable", "unique", "coerce", "required",
                "regex", "drop_invalid_rows", "checks", "name", "default", "report_duplicates",
                "metadata", "parsers"}
_TOP_KEYS = {"schema_type", "version", "api", "dataframe_library", "columns", "checks", "index",
             "dtype", "coerce", "strict", "name", "ordered", "unique", "report_duplicates",
             "unique_column_names", "add_missing_columns", "title", "description",
             "drop_invalid_rows", "metadata", "multiindex", "parsers"}


def _check_names() -> set[str]:
    from pandera.api.checks import Check

    return {n for n in dir(Check) if not n.startswith("_") and callable(getattr(Check, n, None))}


def _check_keys(stats: dict, path: Path, lines: dict, column: str) -> None:
    """A misspelt check must not be skipped silently (pandera ignores unknown keys)."""
    known = _COLUMN_KEYS | _check_names()
    for key in stats:
        if str(key) not in known:
            raise ConfigError(f"{path}: column {column!r}: unknown check or property {key!r}",
                              file=str(path), line=lines.get((column, str(key))),
                              hint="see pandera's built-in checks, e.g. in_range, isin, "
                                   "greater_than_or_equal_to, str_matches")


def _check_top_keys(data: dict, path: Path, lines: dict) -> None:
    for key in data:
        if str(key) not in _TOP_KEYS:
            raise ConfigError(f"{path}: unknown schema key {key!r} (known: "
                              f"{', '.join(sorted(_TOP_KEYS))})", file=str(path),
                              line=lines.get((None, str(key))))


def _deserialize(data: dict, path: Path, lines: dict) -> Any:
    from pandera.io import pandas_io

    try:
        return pandas_io.deserialize_schema(data)
    except Exception as exc:  # noqa: BLE001 - pandera raises many kinds for a bad schema
        column, message = _explain_schema_error(exc, data)
        line = lines.get((column, None)) if column else None
        where = f" (column {column!r})" if column else ""
        raise ConfigError(f"{path}: invalid pandera schema{where}: {message}",
                          file=str(path), line=line) from exc


def _explain_schema_error(exc: Exception, data: dict) -> tuple[str | None, str]:
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, AttributeError):
        m = re.search(r"has no attribute '([^']+)'", str(exc))
        if m:
            message = f"unknown check {m.group(1)!r}"
    column = None
    columns = data.get("columns")
    if isinstance(columns, dict):
        for col, stats in columns.items():
            for value in (stats or {}).values():
                if isinstance(value, str) and value and value in str(exc):
                    column = str(col)
                    break
            for key in (stats or {}):
                if isinstance(key, str) and f"'{key}'" in str(exc):
                    column = str(col)
            if column:
                break
    return column, message[:300]


def _yaml_lines(node: Any) -> dict[tuple[str | None, str | None], int]:
    """Line numbers (1-based) of the schema's parts from a composed YAML node.

    Keys: ``(None, None)`` the document, ``(None, key)`` a top-level key,
    ``(column, None)`` a column, ``(column, key)`` a property or check of a column
    (compact format ``in_range:`` or nested ``checks: {in_range: ...}``).
    """
    import yaml

    lines: dict[tuple[str | None, str | None], int] = {}
    if node is None:
        return lines
    lines[(None, None)] = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key, value in node.value:
        top = str(key.value)
        lines[(None, top)] = key.start_mark.line + 1
        if top == "checks":
            for name, line in _check_lines(value):
                lines.setdefault((None, name), line)
        if top != "columns":
            continue
        entries: list[tuple[str, Any, int]] = []
        if isinstance(value, yaml.MappingNode):
            entries = [(str(k.value), v, k.start_mark.line + 1) for k, v in value.value]
        elif isinstance(value, yaml.SequenceNode):      # list form: - name: x
            for item in value.value:
                if isinstance(item, yaml.MappingNode):
                    for k, v in item.value:
                        if k.value == "name":
                            entries.append((str(v.value), item, k.start_mark.line + 1))
        for col, col_node, line in entries:
            lines[(col, None)] = line
            if not isinstance(col_node, yaml.MappingNode):
                continue
            for k, v in col_node.value:
                lines[(col, str(k.value))] = k.start_mark.line + 1
                if k.value == "checks":
                    for name, cline in _check_lines(v):
                        lines[(col, name)] = cline
    return lines


def _check_lines(node: Any) -> Iterator[tuple[str, int]]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            yield str(k.value), k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.MappingNode):
                for k, v in item.value:
                    if k.value in ("check_name", "name") and isinstance(v, yaml.ScalarNode):
                        yield str(v.value), item.start_mark.line + 1
                    elif isinstance(v, (yaml.MappingNode, yaml.ScalarNode)) and len(item.value) == 1:
                        yield str(k.value), k.start_mark.line + 1


def _load_python_file(path: Path, name: str | None, spec: str) -> LoadedSchema:
    if not path.exists():
        raise ConfigError(f"{path}: no such schema file", file=str(path))
    module_name = f"_mlcd_schema_{abs(hash(str(path.resolve())))}"
    try:
        mod_spec = importlib.util.spec_from_file_location(module_name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ConfigError(f"{path}: cannot import as a Python module", file=str(path))
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[module_name] = module
        mod_spec.loader.exec_module(module)
    except ConfigError:
        raise
    except SyntaxError as exc:
        raise ConfigError(f"{path}: syntax error at line {exc.lineno}: {exc.msg}",
                          file=str(path), line=exc.lineno) from exc
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        line = _line_in(exc, path)
        raise ConfigError(f"{path}: importing the schema raised {type(exc).__name__}: "
                          f"{first_line(exc)}", file=str(path), line=line) from exc
    return _from_module(module, name, spec, str(path))


def _load_python_module(module_name: str, name: str, spec: str) -> LoadedSchema:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--schema {spec!r}: module {module_name!r} not found "
                          f"({first_line(exc)})") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        raise ConfigError(f"--schema {spec!r}: importing {module_name} raised "
                          f"{type(exc).__name__}: {first_line(exc)}") from exc
    file = getattr(module, "__file__", None)
    return _from_module(module, name, spec, _display(file) if file else spec)


def _from_module(module: Any, name: str | None, spec: str, file: str) -> LoadedSchema:
    import pandera.pandas as pa

    def usable(obj: Any) -> bool:
        return (isinstance(obj, pa.DataFrameSchema)
                or (inspect.isclass(obj) and issubclass(obj, pa.DataFrameModel)
                    and obj is not pa.DataFrameModel))

    if name:
        if not hasattr(module, name):
            raise ConfigError(f"--schema {spec!r}: {file} defines no {name!r}", file=file)
        obj = getattr(module, name)
        if not usable(obj):
            raise ConfigError(f"--schema {spec!r}: {name} is a {type(obj).__name__}, not a pandera "
                              "DataFrameModel or DataFrameSchema (pandas API)", file=file)
    else:
        found = {n: o for n, o in vars(module).items() if usable(o)
                 and (not inspect.isclass(o) or o.__module__ == module.__name__)}
        if len(found) != 1:
            what = ", ".join(sorted(found)) if found else "none"
            raise ConfigError(f"--schema {spec!r}: expected exactly one pandera DataFrameModel or "
                              f"DataFrameSchema in {file} (found: {what}); name one as "
                              f"'{file}:Name'", file=file)
        name, obj = next(iter(found.items()))
    try:
        schema = obj.to_schema() if inspect.isclass(obj) else obj
    except Exception as exc:  # noqa: BLE001 - a malformed model fails here
        raise ConfigError(f"{file}: {name} is not a valid pandera model: {first_line(exc)}",
                          file=file) from exc
    return LoadedSchema(schema, file, "python", _python_lines(obj, file))


def _python_lines(obj: Any, file: str) -> dict[tuple[str | None, str | None], int]:
    """Lines of a DataFrameModel's fields and custom checks (best effort: source needed)."""
    lines: dict[tuple[str | None, str | None], int] = {}
    if not inspect.isclass(obj):
        return lines
    try:
        source, start = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return lines
    lines[(None, None)] = start
    pending: list[str] | None = None
    for offset, text in enumerate(source):
        lineno = start + offset
        m = re.match(r"\s+(\w+)\s*:", text)
        if m and not text.lstrip().startswith(("def ", "@", "#")):
            lines.setdefault((m.group(1), None), lineno)
        deco = re.match(r"\s+@\w+(?:\.\w+)*\.(check|dataframe_check)\((.*)", text)
        if deco:
            pending = re.findall(r"['\"]([^'\"]+)['\"]", deco.group(2)) or [None]
            if deco.group(1) == "dataframe_check":
                pending = [None]
            continue
        fn = re.match(r"\s+def (\w+)\s*\(", text)
        if fn:
            for col in pending or []:
                lines[(col, fn.group(1))] = lineno
            pending = None
    return lines


def _line_in(exc: BaseException, path: Path) -> int | None:
    target = str(path.resolve())
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        try:
            if str(Path(frame.filename).resolve()) == target:
                return frame.lineno
        except OSError:
            continue
    return None


def _display(file: str) -> str:
    try:
        return os.path.relpath(file)
    except ValueError:
        return file


# --------------------------------------------------------------------------- inference

@dataclass
class ColumnNote:
    column: str
    dtype: str
    rows: int
    nulls: int
    distinct: int | None
    note: str = ""


def infer_schema(df: pd.DataFrame, *, max_categories: int = 20,
                 max_category_chars: int = 200) -> tuple[Any, list[ColumnNote]]:
    """pandera's ``infer_schema`` plus allowed categories for low-cardinality strings.

    * dtypes and ``nullable`` as pandera infers them; no index (a snapshot's row
      numbers are not part of its schema);
    * numeric and datetime ranges: the observed min/max (a range whose bound could not
      be computed, as in an all-NaN column, is left out);
    * strings (and categoricals, booleans excluded) with at most ``max_categories``
      distinct values, each at most ``max_category_chars`` long and repeating (distinct
      values at most half the non-null rows): ``isin`` with the sorted categories.
    """
    import pandas as pd
    import pandera.pandas as pa

    if df.shape[1] == 0:
        raise DataError("the data has no columns; nothing to infer")
    if len(df) == 0:
        raise DataError("the data has no rows; a schema cannot be inferred from an empty dataset")
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise DataError(f"duplicate column names {dupes!r}; a schema needs unique column names")
    try:
        inferred = pa.infer_schema(df)
    except Exception as exc:  # noqa: BLE001 - pandera cannot infer some exotic dtypes
        raise DataError(f"pandera cannot infer a schema: {first_line(exc)}") from exc
    notes: list[ColumnNote] = []
    columns = {}
    for name, column in inferred.columns.items():
        series = df[name]
        nulls = int(series.isna().sum())
        checks = [c for c in column.checks if _finite_bounds(c)]
        distinct = None
        note = ""
        is_text = (pd.api.types.is_string_dtype(series.dtype)
                   or isinstance(series.dtype, pd.CategoricalDtype))
        if nulls == len(series):
            note = "entirely null: dtype and checks could not be inferred; set them by hand"
            checks = []
        elif is_text:
            values = series.dropna()
            distinct = int(values.nunique())
            all_str = bool(values.map(lambda v: isinstance(v, str)).all())
            longest = int(values.astype(str).str.len().max()) if len(values) else 0
            if (all_str and distinct <= max_categories and distinct * 2 <= len(values)
                    and longest <= max_category_chars):
                cats = sorted(str(v) for v in values.unique())
                checks.append(pa.Check.isin(cats))
                note = f"{distinct} categories seen; a new value fails validation"
            elif not all_str:
                note = "mixed value types"
            elif longest > max_category_chars:
                note = f"values up to {longest:,} characters: no category check"
            else:
                note = "too many distinct values for a category check"
        elif checks:
            if pd.api.types.is_integer_dtype(series.dtype):
                checks = [_integer_bounds(c) for c in checks]
            note = "range is the observed min/max: widen it to the domain you expect"
        if not is_text and distinct is None:
            try:
                distinct = int(series.nunique())
            except TypeError:
                distinct = None
        columns[name] = _with_checks(column, checks)
        notes.append(ColumnNote(str(name), str(column.dtype), len(series), nulls, distinct, note))
    schema = pa.DataFrameSchema(columns=columns, coerce=inferred.coerce, strict=False)
    return schema, notes


def _integer_bounds(check: Any) -> Any:
    """pandera infers ``greater_than_or_equal_to: 0.0`` for an int column; write ``0``."""
    import pandera.pandas as pa

    stats = getattr(check, "statistics", None) or {}
    if check.name in ("greater_than_or_equal_to", "less_than_or_equal_to") and len(stats) == 1:
        (value,) = stats.values()
        if isinstance(value, float) and value.is_integer():
            return getattr(pa.Check, check.name)(int(value))
    return check


def _with_checks(column: Any, checks: list) -> Any:
    from copy import deepcopy

    out = deepcopy(column)
    out.checks = checks
    return out


def _finite_bounds(check: Any) -> bool:
    for value in (getattr(check, "statistics", None) or {}).values():
        if isinstance(value, float) and math.isnan(value):
            return False
    return True


def render_yaml(schema: Any, notes: list[ColumnNote], *, source: str,
                sha256: str | None = None) -> str:
    """pandera's YAML (``pandera.io`` serialisation) with explanatory comments."""
    import yaml
    from pandera.io import pandas_io

    data = pandas_io.serialize_schema(schema, minimal=True)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    node = yaml.compose(body, Loader=yaml.SafeLoader)
    lines = body.splitlines()
    key_lines = _yaml_lines(node)
    by_col = {n.column: n for n in notes}
    inserts: list[tuple[int, str]] = []
    for name, note in by_col.items():
        line = key_lines.get((name, None))
        if line is None:
            continue
        parts = [f"{note.dtype}", f"{note.nulls:,} of {note.rows:,} null"]
        if note.distinct is not None:
            parts.append(f"{note.distinct:,} distinct")
        text = "; ".join(parts) + (f" - {note.note}" if note.note else "")
        inserts.append((line - 1, "  # " + " ".join(text.split())))
    for index, comment in sorted(inserts, reverse=True):
        lines.insert(index, comment)
    rows = notes[0].rows if notes else 0
    header = [
        "# pandera DataFrameSchema (pandera.io YAML), inferred by `mlcd schema infer`",
        f"# from {source}" + (f" (sha256 {sha256[:12]})" if sha256 else "") + f": {rows:,} rows, "
        f"{len(notes)} columns.",
        "# Review it: ranges are the observed min/max and categories the values seen.",
        "# Each column: dtype, nullable (absent = false), checks such as",
        "# greater_than_or_equal_to / less_than_or_equal_to / isin. Load it in Python with",
        "#   pandera.io.from_yaml(path)    # or: mlcd validate DATA --schema <this file>",
    ]
    return "\n".join(header + lines) + "\n"


@dataclass
class Inferred:
    """What :func:`write_inferred` wrote: the schema, its notes, and the checks dropped."""

    schema: Any
    notes: list[ColumnNote]
    target: Path
    rows: int
    sha256: str | None
    dropped: list[str]


def write_inferred(data: str | os.PathLike, out: str | os.PathLike, *,
                   max_categories: int = 20) -> Inferred:
    """Infer a schema from ``data`` and write it to ``out`` as pandera YAML, after checking
    that it accepts the data it came from (a check its own data fails is dropped)."""
    from mlcd_actions.core import files as fsutil
    from mlcd_actions.core.errors import StageFailed
    from mlcd_actions.data import tables as tabular

    target = Path(out)
    if target.suffix.lower() not in YAML_SUFFIXES:
        raise ConfigError(f"--out {out}: the schema is written as YAML; use a .yaml or .yml name")
    if target.is_dir():
        raise ConfigError(f"--out {out}: is a directory")
    if max_categories < 0:
        raise ConfigError(f"--max-categories {max_categories}: must be 0 or more")
    files = tabular.table_files(data)
    df = tabular.read_table(data)
    if len(df) == 0:
        raise DataError(f"{data}: dataset is empty (0 rows); a schema cannot be inferred from it")
    try:
        schema, notes = infer_schema(df, max_categories=max_categories)
    except DataError as exc:
        raise DataError(f"{data}: {exc.message}") from exc
    sha = fsutil.sha256_file(files[0]) if len(files) == 1 else None
    source = os.fspath(data)

    # the schema must accept the data it was inferred from
    dropped: list[str] = []
    for _ in range(3):
        text = render_yaml(schema, notes, source=source, sha256=sha)
        loaded = _reload(text, target)
        outcome = validate(FrameSource(df, source), loaded)
        if outcome.valid:
            break
        for g in outcome.groups:
            if check_key(g.check) == "dtype" or g.column not in schema.columns:
                raise StageFailed(f"{data}: column {g.column!r}: pandera does not accept its own "
                                  f"inferred {g.check} ({g.message or g.values})")
            col = schema.columns[g.column]
            kept = [c for c in col.checks if str(c.name) != check_key(g.check)
                    and not g.check.startswith(f"{c.name}(")]
            if g.check == "not_nullable":
                schema = schema.update_column(g.column, nullable=True)
            else:
                schema = schema.update_column(g.column, checks=kept)
            dropped.append(f"{g.column}: {g.check}")
    else:  # pragma: no cover - three rounds always settle: each drops a failing check
        raise StageFailed(f"{data}: the inferred schema does not accept its own data")

    fsutil.write_text(target, text)
    return Inferred(schema, notes, target, len(df), sha, dropped)


def _reload(text: str, target: Path) -> LoadedSchema:
    """Parse the rendered YAML exactly as ``mlcd validate`` will (pandera.io)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlcd-schema-") as tmp:
        probe = Path(tmp) / target.name
        probe.write_text(text, encoding="utf-8")
        loaded = load_schema(os.fspath(probe))
    loaded.file = os.fspath(target)
    return loaded


# --------------------------------------------------------------------------- validation

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
    import pandas as pd
    import pandera.pandas as pa

    schema = loaded.schema
    groups: dict[tuple, FailureGroup] = {}

    def collect(exc: Exception) -> None:
        _collect(exc, groups)

    # 1. structure: presence, strictness and order, from the column names alone
    empty = pd.DataFrame({n: pd.Series([], dtype="object") for n in source.names})
    if len(set(source.names)) != len(source.names):
        empty = pd.DataFrame(columns=source.names)
    try:
        schema.validate(empty, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        _collect(exc, groups, only=_STRUCTURAL)
    except pa.errors.SchemaError as exc:
        if str(getattr(exc, "check", "")) in _STRUCTURAL:
            collect(exc)
    except pa.errors.SchemaDefinitionError as exc:
        raise ConfigError(f"{loaded.file}: invalid pandera schema: {first_line(exc)}",
                          file=loaded.file) from exc

    # 2. one column at a time
    plan = _plan(schema, source.names)
    checked = [name for name, _ in plan]
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
                collect(exc)
            except pa.errors.SchemaDefinitionError as exc:
                raise ConfigError(f"{loaded.file}: column {name!r}: invalid pandera schema: "
                                  f"{first_line(exc)}", file=loaded.file,
                                  line=loaded.line_of(name)) from exc
            del frame
            if progress:
                progress(1)
        if pending is not None:
            pending.cancel()

    # 3. dataframe-wide parts: multi-column uniqueness, dataframe checks
    present = [n for n in _schema_names(schema, source.names) if n in source.names]
    unique = schema.unique
    if unique:
        cols = [unique] if isinstance(unique, str) else list(unique)
        if all(c in source.names for c in cols):
            part = pa.DataFrameSchema(unique=cols, report_duplicates=schema.report_duplicates)
            try:
                part.validate(source.frame(cols), lazy=True, inplace=True)
            except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
                collect(exc)
    if schema.checks and present:
        whole = pa.DataFrameSchema(columns={n: _cast_only(schema.columns.get(n)) for n in present
                                            if n in schema.columns},
                                   checks=schema.checks, coerce=schema.coerce, strict=False)
        try:
            whole.validate(source.frame(present), lazy=True, inplace=True)
        except pa.errors.SchemaErrors as exc:
            _collect(exc, groups, only=None, skip_columns=True)
        except pa.errors.SchemaError as exc:
            collect(exc)
    key_for = {name: str(column.name) for name, column in plan}
    for g in groups.values():
        g.schema_key = key_for.get(g.column, g.column) if g.column is not None else None
    ordered = sorted(groups.values(), key=lambda g: (_order(g.column, source.names), g.check))
    return Outcome(source.rows, source.names, checked, ordered, source.engine)


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

"""Loading a pandera schema for ``mlcd validate`` (:func:`load_schema`).

A pandera YAML/JSON schema (pandera's own format, :mod:`pandera.io`), a Python
``DataFrameModel`` or ``DataFrameSchema`` named as ``pkg.module:Name``,
``path/to/schemas.py`` or ``path/to/schemas.py:Name``. The result knows the file and line
of every column and check (:meth:`LoadedSchema.line_of`), so a failure becomes an
annotation on the schema line that declared it. pandera is imported inside functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import ConfigError, first_line

if TYPE_CHECKING:  # pragma: no cover
    pass

YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
PY_SUFFIXES = (".py",)
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
    lines = yaml_lines(node)
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


def yaml_lines(node: Any) -> dict[tuple[str | None, str | None], int]:
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

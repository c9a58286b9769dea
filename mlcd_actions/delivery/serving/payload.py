"""MLflow-compatible JSON payloads -> a DataFrame in the model's column order.

Accepted request bodies (a batch of rows each):

* records: ``[{"a": 1, "b": "x"}, ...]`` or ``{"dataframe_records": [...]}``
* split: ``{"columns": ["a", "b"], "data": [[1, "x"], ...]}`` or
  ``{"dataframe_split": {"columns": [...], "data": [...]}}``
* columnar: ``{"inputs": {"a": [1, 2], "b": ["x", "y"]}}`` (``"instances"`` too; a list
  there is read as records, or as rows in signature order)
* one record: ``{"a": 1, "b": "x"}`` (an object whose keys include an input column)

Every value is checked against the column's MLflow type (double/float: a number or
null; long/integer: a whole number or null; boolean; string; datetime: an ISO string;
binary: base64). Columns the model does not take are ignored. Errors are
:class:`RequestError`: 400 for a body that is not JSON or not a known payload shape, 422
for a missing column or a wrong type; the message names the field and the row.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from mlcd_actions.delivery.serving.spec import Column

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

WRAPPERS = ("dataframe_records", "dataframe_split", "columns", "data", "inputs", "instances")
_MISSING = object()
_INT_RANGE = {"long": (-(2 ** 63), 2 ** 63 - 1), "integer": (-(2 ** 31), 2 ** 31 - 1)}


class RequestError(Exception):
    """A client error: HTTP ``status`` with a message naming ``field`` (and ``row``)."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 row: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.row = row

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.row is not None:
            out["row"] = self.row
        return out


class Batch:
    """A validated batch: raw JSON values per column (for the log) and typed arrays."""

    __slots__ = ("n_rows", "raw", "arrays")

    def __init__(self, n_rows: int, raw: dict[str, list], arrays: dict[str, Any]) -> None:
        self.n_rows = n_rows
        self.raw = raw
        self.arrays = arrays

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.arrays, copy=False)

    def row_inputs(self, i: int) -> dict[str, Any]:
        return {name: values[i] for name, values in self.raw.items()}


def loads(body: bytes) -> Any:
    """Parse JSON; NaN/Infinity (as Python's json writes them) are accepted too."""
    if not body or not body.strip():
        raise RequestError(400, "request body is empty: send JSON records or columns")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:  # the slow path only for what orjson refuses: NaN, Infinity
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RequestError(400, f"request body is not valid JSON: {exc}") from None


def parse(body: bytes, columns: list[Column] | None) -> Batch:
    """Body bytes -> a validated :class:`Batch` (or a :class:`RequestError`)."""
    return validate(to_columns(loads(body), columns), columns)


def to_columns(obj: Any, columns: list[Column] | None) -> tuple[int, dict[str, list]]:
    """Any accepted payload shape -> ``(n_rows, {column: values})``."""
    names = [c.name for c in columns] if columns is not None else None
    if isinstance(obj, list):
        return _from_list(obj, names, "body")
    if not isinstance(obj, dict):
        raise RequestError(400, f"request body must be a JSON object or array, not "
                                f"{_json_type(obj)}")
    if "dataframe_records" in obj:
        recs = obj["dataframe_records"]
        if not isinstance(recs, list):
            raise RequestError(400, "dataframe_records must be an array of objects",
                               field="dataframe_records")
        return _records(recs, names, "dataframe_records")
    if "dataframe_split" in obj:
        split = obj["dataframe_split"]
        if not isinstance(split, dict):
            raise RequestError(400, "dataframe_split must be an object with columns and data",
                               field="dataframe_split")
        return _split(split, "dataframe_split.", names)
    if "columns" in obj or "data" in obj:
        return _split(obj, "", names)
    for key in ("inputs", "instances"):
        if key in obj:
            value = obj[key]
            if isinstance(value, dict):
                return _columnar(value, key, names)
            if isinstance(value, list):
                return _from_list(value, names, key)
            raise RequestError(400, f"{key} must be an object of columns or an array of rows",
                               field=key)
    if names is None or any(k in obj for k in names):
        return _records([obj], names, "body")
    raise RequestError(400, "unknown payload: send an array of records, or an object with "
                            "dataframe_records, dataframe_split, columns/data or inputs "
                            f"(got an object with {len(obj)} key(s), none of them an input "
                            "column)")


def _from_list(rows: list, names: list[str] | None, where: str) -> tuple[int, dict[str, list]]:
    if not rows:
        raise RequestError(400, f"{where} holds no rows", field=None if where == "body" else where)
    if isinstance(rows[0], dict):
        return _records(rows, names, where)
    if isinstance(rows[0], list):
        if names is None:
            raise RequestError(400, f"{where}: rows given as arrays need column names; the "
                                    "model has no signature, send records instead")
        return _rows(rows, names, where)
    raise RequestError(400, f"{where}[0] must be an object (a record), not "
                            f"{_json_type(rows[0])}", field=f"{where}[0]" if where != "body"
                       else None, row=0)


def _records(recs: list, names: list[str] | None, where: str) -> tuple[int, dict[str, list]]:
    if not recs:
        raise RequestError(400, f"{where} holds no rows")
    for i, rec in enumerate(recs):
        if not isinstance(rec, dict):
            raise RequestError(400, f"row {i} must be an object (a record), not "
                                    f"{_json_type(rec)}", row=i)
    if names is None:  # no signature: every key seen, in first-seen order
        seen: dict[str, None] = {}
        for rec in recs:
            for k in rec:
                seen.setdefault(k, None)
        names = list(seen)
    if len(recs) == 1:
        rec = recs[0]
        return 1, {n: [rec.get(n, _MISSING)] for n in names}
    return len(recs), {n: [rec.get(n, _MISSING) for rec in recs] for n in names}


def _rows(rows: list, names: list[str], where: str,
          known: list[str] | None = None) -> tuple[int, dict[str, list]]:
    """Rows as arrays of values in ``names`` order; an error lists only the names in
    ``known`` (the model's input columns; default: all of ``names``)."""
    known = names if known is None else known
    width = len(names)
    for i, r in enumerate(rows):
        if not isinstance(r, list):
            raise RequestError(400, f"{where} row {i} must be an array of {width} values, not "
                                    f"{_json_type(r)}", row=i)
        if len(r) != width:
            shown = ", ".join(n for n in names if n in known)
            raise RequestError(400, f"{where} row {i} has {len(r)} values, expected {width}"
                                    + (f" ({shown})" if shown else ""), row=i)
    return len(rows), {n: [r[j] for r in rows] for j, n in enumerate(names)}


def _known(name: str, names: list[str] | None) -> str | None:
    """``name`` when it is one of the model's input columns: a name the client made up is
    never echoed back."""
    return name if names is not None and name in names else None


def _split(split: dict, prefix: str, names: list[str] | None) -> tuple[int, dict[str, list]]:
    cols, data = split.get("columns"), split.get("data")
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise RequestError(400, f"{prefix}columns must be an array of column names",
                           field=f"{prefix}columns")
    if len(set(cols)) != len(cols):
        dup = _known(next(c for c in cols if cols.count(c) > 1), names)
        raise RequestError(400, f"{prefix}columns names "
                                f"{repr(dup) if dup else 'a column'} twice", field=dup)
    if not isinstance(data, list):
        raise RequestError(400, f"{prefix}data must be an array of rows", field=f"{prefix}data")
    if not data:
        raise RequestError(400, f"{prefix}data holds no rows", field=f"{prefix}data")
    return _rows(data, cols, f"{prefix}data", names or [])


def _columnar(obj: dict, where: str, names: list[str] | None
              ) -> tuple[int, dict[str, list]]:
    out: dict[str, list] = {}
    n = None
    for name, values in obj.items():
        if not isinstance(values, list):
            values = [values]
        if n is None:
            n = len(values)
        elif len(values) != n:
            known = _known(name, names)
            what = f"column {known!r}" if known else "a column"
            raise RequestError(400, f"{where}: {what} has {len(values)} values, expected "
                                    f"{n} like the first column", field=known)
        out[name] = values
    if not n:
        raise RequestError(400, f"{where} holds no rows", field=where)
    return n, out


def validate(parsed: tuple[int, dict[str, list]], columns: list[Column] | None) -> Batch:
    """Check every value against its column type; build typed arrays in model order."""
    n, given = parsed
    if columns is None:
        raw = {k: [None if v is _MISSING else v for v in vals] for k, vals in given.items()}
        return Batch(n, raw, {k: _infer(v) for k, v in raw.items()})
    raw: dict[str, list] = {}
    arrays: dict[str, Any] = {}
    for col in columns:
        values = given.get(col.name)
        if values is None:
            if col.required:
                raise RequestError(422, f"missing column {col.name!r}", field=col.name)
            values = [None] * n
        elif _MISSING in values:  # identity check on a sentinel: cheap for short lists
            i = next(i for i, v in enumerate(values) if v is _MISSING)
            if col.required:
                raise RequestError(422, f"row {i}: missing column {col.name!r}",
                                   field=col.name, row=i)
            values = [None if v is _MISSING else v for v in values]
        raw[col.name] = values
        arrays[col.name] = convert(col, values)
    return Batch(n, raw, arrays)


def convert(col: Column, values: list) -> Any:
    """JSON values of one column -> a numpy array of the column's type."""
    kind = col.type
    if kind in ("double", "float"):
        dtype = np.float64 if kind == "double" else np.float32
        for i, v in enumerate(values):
            t = type(v)
            if t is not float and t is not int and v is not None:
                raise _type_error(col, i, "a number", v)
        try:
            return np.array([math.nan if v is None else v for v in values], dtype=dtype)
        except OverflowError:
            i = next(i for i, v in enumerate(values) if type(v) is int and abs(v) > 1e308)
            raise RequestError(422, f"row {i}: column {col.name!r} value is out of range for "
                                    f"{kind}", field=col.name, row=i) from None
    if kind in ("long", "integer"):
        lo, hi = _INT_RANGE[kind]
        has_null = False
        for i, v in enumerate(values):
            t = type(v)
            if t is int or (t is float and v.is_integer()):
                if not lo <= v <= hi:
                    raise RequestError(422, f"row {i}: column {col.name!r} value is out of "
                                            f"range for {kind}", field=col.name, row=i)
            elif v is None:
                has_null = True
            else:
                raise _type_error(col, i, "a whole number", v)
        if has_null:  # what pandas does to an integer column with gaps
            return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=np.int64 if kind == "long" else np.int32)
    if kind == "boolean":
        has_null = False
        for i, v in enumerate(values):
            if v is None:
                has_null = True
            elif type(v) is not bool:
                raise _type_error(col, i, "true or false", v)
        return np.array(values, dtype=object if has_null else bool)
    if kind == "string":
        for i, v in enumerate(values):
            if type(v) is not str and v is not None:
                raise _type_error(col, i, "a string", v)
        return np.array(values, dtype=object)
    if kind == "datetime":
        import pandas as pd

        for i, v in enumerate(values):
            if type(v) is not str and v is not None:
                raise _type_error(col, i, "an ISO 8601 date-time string", v)
            if v is not None:
                try:
                    pd.Timestamp(v)
                except (ValueError, TypeError):
                    raise RequestError(422, f"row {i}: column {col.name!r} value is not "
                                            "an ISO 8601 date-time", field=col.name,
                                       row=i) from None
        return pd.to_datetime(pd.Series(values, dtype=object)).to_numpy()
    if kind == "binary":
        out = []
        for i, v in enumerate(values):
            if v is None:
                out.append(None)
                continue
            if type(v) is not str:
                raise _type_error(col, i, "a base64 string", v)
            try:
                out.append(base64.b64decode(v, validate=True))
            except (binascii.Error, ValueError):
                raise RequestError(422, f"row {i}: column {col.name!r} is not valid base64",
                                   field=col.name, row=i) from None
        return np.array(out, dtype=object)
    return _infer(values)


def _infer(values: list) -> Any:
    """No type known: let pandas infer, as it would reading a file."""
    import pandas as pd

    return pd.Series(values).to_numpy()


def _type_error(col: Column, i: int, expected: str, value: Any) -> RequestError:
    return RequestError(422, f"row {i}: column {col.name!r} must be {expected} ({col.type}), "
                             f"got {_json_type(value)}", field=col.name, row=i)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__

"""Inferring a pandera schema for ``mlcd schema infer`` (:func:`infer_schema`,
:func:`render_yaml`, :func:`write_inferred`): pandera's ``infer_schema`` plus allowed
categories for low-cardinality strings, rendered as pandera YAML with comments a person
can read and edit, and checked against the data it came from before it is written.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import ConfigError, DataError, first_line

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
from mlcd_actions.data.schemas.load import (
    YAML_SUFFIXES,
    LoadedSchema,
    check_key,
    load_schema,
    yaml_lines,
)
from mlcd_actions.data.schemas.validate import FrameSource, validate


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
    key_lines = yaml_lines(node)
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

"""``validate``: check a dataset against a pandera schema, and its statistics against a reference.

The library behind ``mlcd validate DATA --schema schema.yaml [--reference REF_DATA]``
(DESIGN §2):

1. load the schema: pandera YAML/JSON (:mod:`pandera.io` format, as ``mlcd schema infer``
   writes it) or a Python ``DataFrameModel``/``DataFrameSchema`` (``pkg.module:Model``,
   ``schemas.py`` or ``schemas.py:Model``);
2. validate lazily, collecting every failure: pandera-on-pandas one column at a time
   (Parquet is read column by column with pyarrow), so memory stays near two columns and
   row indices are global (see :mod:`mlcd_actions.data.schemas`);
3. report one row per failing (column, check) -- count, sample row indices, sample
   values -- and one annotation per row on the schema line that declared the check;
4. with ``reference``, compare column statistics with :func:`mlcd_actions.data.drift.compare`
   (numeric: PSI, KS; categorical: L-infinity, JS, new/missing categories) and gate them
   with ``skew_thresholds`` (``'psi<=0.2'`` for every column, ``'age.psi<=0.1'`` for one);
   ``null_fraction_delta<=0.1`` applies too unless a global ``null_fraction_delta`` threshold
   is given, so a column that turns null (no PSI/L-inf computable) is never "within skew".

Exit codes: 0 valid and no skew over threshold; 1 any schema failure or skew over a
threshold; 2 bad input (missing or malformed data or schema, empty dataset, unknown
metric in a threshold).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from mlcd_actions.core import gates
from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.core.results import FAILED, Finding, StageResult, Table

STAGE = "validate"
DEFAULT_SKEW_THRESHOLDS = ("psi<=0.2", "linf<=0.2", "null_fraction_delta<=0.1")
NULL_SKEW_THRESHOLD = "null_fraction_delta<=0.1"   # kept with the user's unless they set one
SKEW_OPTION = "--skew-threshold"


def run(data: str | os.PathLike, schema: str, *, reference: str | os.PathLike | None = None,
        skew_thresholds: Iterable[str] = (), bins: int = 10, engine: str = "pandas",
        spark: Any = None) -> StageResult:
    """Validate ``data`` against ``schema``; with ``reference``, gate the skew too.

    ``engine="spark"`` runs the checks and the skew statistics as Spark jobs
    (:mod:`mlcd_actions.data.spark.validate`; ``spark``: its session settings)."""
    from mlcd_actions.core.engines import check_engine
    from mlcd_actions.data import schemas

    thresholds = gates.parse_thresholds(list(skew_thresholds), option=SKEW_OPTION)
    if thresholds and reference is None:
        raise ConfigError(f"{SKEW_OPTION} needs --reference (the data to compare with)")
    if bins < 2:
        raise ConfigError(f"--skew-bins {bins}: must be at least 2")
    if check_engine(engine) == "spark":
        from mlcd_actions.data.spark.validate import SparkEngine

        with SparkEngine.start(data, reference, spark, schema) as (sp, loaded):
            return _run(data, loaded, reference, thresholds, bins, sp)
    if reference is not None:
        from mlcd_actions.data import tables as tabular

        tabular.table_files(reference)          # missing reference: fail before the work
    return _run(data, schemas.load_schema(schema), reference, thresholds, bins, None)


def _run(data: Any, loaded: Any, reference: Any, thresholds: list[gates.Threshold], bins: int,
         spark: Any) -> StageResult:
    from mlcd_actions.core.progress import Progress
    from mlcd_actions.data import schemas

    source = spark.open(data) if spark else schemas.open_source(data)
    if source.rows == 0:
        raise DataError(f"{data}: dataset is empty (0 rows); nothing to validate")
    if not source.names:
        raise DataError(f"{data}: dataset has no columns; nothing to validate")

    with Progress("validate", total=len(loaded.schema.columns) or None, unit="columns") as bar:
        outcome = (spark.validate(source, loaded) if spark else
                   schemas.validate(source, loaded, progress=bar.update))

    result = StageResult(STAGE)
    result.details.update(schema=loaded.file, schema_kind=loaded.kind, engine=outcome.engine,
                          checked_columns=outcome.checked)
    _report_failures(result, outcome, loaded, str(data))
    result.metrics.update(rows=outcome.rows, columns=len(outcome.columns),
                          failures=outcome.failures, failed_checks=len(outcome.groups))
    result.outputs["valid"] = outcome.valid
    result.outputs["failures"] = outcome.failures

    skew_failed: list[gates.GateRow] = []
    if reference is not None:
        if not thresholds:
            thresholds = gates.parse_thresholds(DEFAULT_SKEW_THRESHOLDS, option=SKEW_OPTION)
            result.warnings.append("no --skew-threshold given: using the defaults "
                                   + ", ".join(DEFAULT_SKEW_THRESHOLDS))
        elif not any(t.metric == "null_fraction_delta" for t in thresholds):
            thresholds = [*gates.parse_thresholds([NULL_SKEW_THRESHOLD], option=SKEW_OPTION),
                          *thresholds]
        skew_failed = _skew(result, source, loaded, data, reference, thresholds, bins, spark)

    if outcome.valid and not skew_failed:
        checks = sum(len(c.checks) for c in loaded.schema.columns.values())
        skew = f"; skew within {len(result.gates)} threshold(s)" if result.gates else ""
        result.reason = (f"{outcome.rows:,} rows × {len(outcome.columns)} columns match "
                         f"{loaded.file} ({len(loaded.schema.columns)} schema columns, "
                         f"{checks} checks){skew}")
        return result
    result.status = FAILED
    parts = []
    if not outcome.valid:
        first = outcome.groups[0]
        more = len(outcome.groups) - 1
        parts.append(f"{outcome.failures:,} schema failure(s): {_describe(first)}"
                     + (f" (+{more} more check(s))" if more else ""))
    if skew_failed:
        more = len(skew_failed) - 1
        parts.append(f"skew: {skew_failed[0].message}" + (f" (+{more} more)" if more else ""))
    result.reason = "; ".join(parts)
    return result


# --------------------------------------------------------------------------- failures

def _data_rows(rows: list) -> list:
    """Row indices (0-based, global to the file) as the 1-based "data row N" users read."""
    return [r + 1 if isinstance(r, int) and not isinstance(r, bool) else r for r in rows]


def _rows_text(g: Any) -> str:
    if not g.rows:
        return ""
    more = "…" if g.count > len(g.rows) else ""
    word = "data row" if len(g.rows) == 1 and not more else "data rows"
    return f"{word} {', '.join(map(str, _data_rows(g.rows)))}{more}"


def _safe(value: Any) -> str:
    """A data value quoted in a report: PII (as :mod:`mlcd_actions.data.pii` detects it) is masked."""
    from mlcd_actions.data import pii

    text = str(value)
    return pii.mask_value(text) if pii.find_all(text) else text


def _target_dtype(g: Any) -> str:
    import re

    m = re.search(r"\(\s*'?([^')]+?)'?\s*\)", g.check or "")
    if m:
        return m.group(1)
    m = re.search(r"to type (\S+?)[:,]?(?:\s|$)", g.message or "")
    return m.group(1) if m else "the schema dtype"


def _describe(g: Any) -> str:
    from mlcd_actions.data import pii
    from mlcd_actions.data.schemas import check_key

    col = repr(g.column) if g.column is not None else "(dataframe)"
    key = check_key(g.check)
    if g.check == "column_in_dataframe":
        return f"column {col} is in the schema but not in the data"
    if g.check == "column_in_schema":
        return f"column {col} is in the data but not in the schema (strict)"
    if g.check == "column_ordered":
        return f"column {col} is out of the schema's order"
    rows = f" ({_rows_text(g)})" if g.rows else ""
    if key in ("dtype", "coerce_dtype") and (g.check.startswith("coerce_dtype")
                                             or "coerc" in (g.message or "").lower()):
        first = f" (first {_rows_text(g)})" if g.rows else ""
        return (f"column {col}: {g.count:,} value(s) cannot be coerced to "
                f"{_target_dtype(g)}{first}")
    if key == "dtype" and g.message:
        text = " ".join(pii.mask_text(g.message).split())
        return f"column {col}: {text[:200]}{'…' if len(text) > 200 else ''}"
    if g.check == "not_nullable":
        return f"column {col}: {g.count:,} null value(s) in a non-nullable column{rows}"
    if g.check == "field_uniqueness":
        return f"column {col}: {g.count:,} duplicated value(s) in a unique column{rows}"
    return f"column {col} fails {g.check}: {g.count:,} row(s){rows}"


def _report_failures(result: StageResult, outcome: Any, loaded: Any, data: str) -> None:
    from mlcd_actions.data.schemas import check_key

    rows = []
    for g in outcome.groups:
        line = loaded.line_of(g.schema_key, g.check)
        shown = [_safe(v) for v in g.values]
        rows.append([g.column if g.column is not None else "(dataframe)", g.check, g.count,
                     ", ".join(map(str, _data_rows(g.rows))), ", ".join(shown), line])
        values = f"; values: {', '.join(shown)}" if shown and check_key(g.check) not in (
            "dtype",) and g.check not in ("column_in_dataframe", "column_in_schema") else ""
        result.findings.append(Finding(
            message=f"{data}: {_describe(g)}{values}",
            title=f"mlcd validate: {g.column if g.column is not None else 'dataframe'} "
                  f"{check_key(g.check)}",
            file=loaded.file, line=line, column=g.column, code=f"schema.{check_key(g.check)}",
            count=g.count, rows=_data_rows(list(g.rows)) or None))
    result.tables.append(Table(
        "schema failures", ["column", "check", "failures", "sample data rows (from 1)",
                            "sample values", "schema line"], rows,
        note=None if rows else f"every check in {loaded.file} passed"))


# --------------------------------------------------------------------------- skew

def _skew(result: StageResult, source: Any, loaded: Any, data: Any, reference: Any,
          thresholds: list[gates.Threshold], bins: int, spark: Any) -> list[gates.GateRow]:
    from mlcd_actions.data import drift
    from mlcd_actions.data.schemas import FrameSource

    current: Any = os.fspath(data)
    ref, ref_names = spark.reference(reference) if spark else _reference(reference)
    if spark is None and (isinstance(source, FrameSource) or len(getattr(source, "files", [])) != 1):
        current = source.frame(source.names)
    columns = [c for c in source.names if c in ref_names]
    if not columns:
        raise DataError(f"{reference}: shares no column with {data}; cannot compare skew")
    categorical = [c for c in columns if _declared_categorical(loaded.schema, c)]
    compare = spark.compare if spark else drift.compare
    results = compare(ref, source if spark else current, columns=columns,
                      categorical=categorical, bins=bins)
    per_column = {r.column: r.metrics() for r in results}
    result.gates.extend(_skew_gates(per_column, thresholds))
    result.details["skew"] = [{k: v for k, v in r.to_dict().items()
                               if k not in ("bin_labels", "ref_hist", "cur_hist")}
                              for r in results]
    psis = [r.psi for r in results if r.psi is not None]
    linfs = [r.linf for r in results if r.linf is not None]
    result.metrics.update(skew_columns=len(results),
                          max_psi=max(psis) if psis else None,
                          max_linf=max(linfs) if linfs else None)
    rows = []
    for r in results:
        rows.append([r.column, r.kind, r.psi, r.ks, r.linf, r.js,
                     _cats(r.new_categories, r.new_category_count),
                     _cats(r.missing_categories, r.missing_category_count),
                     r.ref_count, r.cur_count])
    result.tables.append(Table(
        f"skew vs reference {reference}",
        ["column", "kind", "psi", "ks", "linf", "js", "new categories", "missing categories",
         "ref n", "cur n"], rows))
    failed = [g for g in result.gates if g.verdict == FAILED]
    for g in failed:
        column = g.metric.rsplit(".", 1)[0]
        result.findings.append(Finding(f"{data}: skew vs {reference}: {g.message}",
                                       title=f"mlcd validate: skew {column}", column=column,
                                       code=f"skew.{gates.base_metric(g.metric)}",
                                       file=loaded.file, line=loaded.line_of(column, None)))
    result.outputs["skew"] = bool(failed)
    return failed


def _skew_gates(per_column: dict[str, dict[str, Any]],
                thresholds: list[gates.Threshold]) -> list[gates.GateRow]:
    """Unscoped ``psi<=0.2`` applies to every column that has a PSI; ``age.psi<=0.1`` to
    ``age`` only, replacing the unscoped one there. A metric no column has is a typo."""
    known = sorted({m for metrics in per_column.values() for m in metrics})
    scoped: dict[tuple[str, str], gates.Threshold] = {}
    unscoped: list[gates.Threshold] = []
    for t in thresholds:
        if "." in t.metric:
            column, metric = t.metric.rsplit(".", 1)
            if column not in per_column:
                raise ConfigError(f"{SKEW_OPTION} {t.spec!r}: column {column!r} is not compared "
                                  f"(columns: {', '.join(list(per_column)[:20])})")
            if metric not in per_column[column]:
                raise ConfigError(f"{SKEW_OPTION} {t.spec!r}: column {column!r} has no metric "
                                  f"{metric!r} (it has: {', '.join(per_column[column])})")
            scoped[(column, metric)] = t
        else:
            if t.metric not in known:
                raise ConfigError(f"{SKEW_OPTION} {t.spec!r}: unknown metric {t.metric!r}; "
                                  f"known: {', '.join(known)}")
            unscoped.append(t)
    rows = []
    for column, metrics in per_column.items():
        done = set()
        for (col, metric), t in scoped.items():
            if col == column:
                rows.append(t.check(metrics[metric], metric=f"{column}.{metric}"))
                done.add(metric)
        for t in unscoped:
            if t.metric in metrics and t.metric not in done:
                rows.append(t.check(metrics[t.metric], metric=f"{column}.{t.metric}"))
    return rows


def _reference(path: Any) -> tuple[Any, list[str]]:
    """What to hand to ``drift.compare`` (a Parquet path, read column by column there, or a
    DataFrame) and the reference's column names."""
    from mlcd_actions.data import tables as tabular

    files = tabular.table_files(path)
    if len(files) == 1 and tabular.kind_of(files[0]) == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(files[0])
        except Exception as exc:  # noqa: BLE001 - pyarrow's zoo of errors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(f"{files[0]}: cannot read as parquet: {first}") from exc
        if pf.metadata.num_rows == 0:
            raise DataError(f"{path}: reference dataset is empty (0 rows); cannot compare skew")
        return os.fspath(path), list(pf.schema_arrow.names)
    df = tabular.read_table(path, what="reference")
    if len(df) == 0:
        raise DataError(f"{path}: reference dataset is empty (0 rows); cannot compare skew")
    return df, [str(c) for c in df.columns]


def _declared_categorical(schema: Any, column: str) -> bool:
    col = schema.columns.get(column)
    if col is None:
        return False
    return any(getattr(c, "name", None) in ("isin", "notin") for c in col.checks)


def _cats(values: list, count: int) -> str:
    if not count:
        return ""
    shown = ", ".join(_safe(v)[:30] for v in values[:5])
    return shown + (f" (+{count - len(values[:5])})" if count > len(values[:5]) else "")

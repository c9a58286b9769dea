"""``schema infer``: write a first pandera schema for a dataset.

The library behind ``mlcd schema infer DATA --out schema.yaml`` (DESIGN §2, §7). It
reads the data and (:func:`mlcd_actions.data.schemas.write_inferred`) infers a pandera ``DataFrameSchema`` (:func:`mlcd_actions.data.schemas.infer_schema`:
dtypes, nullable, observed ranges, allowed categories for low-cardinality strings), and
writes it atomically as pandera's own YAML (:mod:`pandera.io`), with comments, so that
``pandera.io.from_yaml`` and ``mlcd validate --schema`` both load it.

Before writing, the schema is checked against the data it came from: a check that its
own data fails (a quirk of a dtype round trip) is dropped with a warning rather than
written. An existing schema file is replaced only when the new one is complete.
"""

from __future__ import annotations

import os

from mlcd_actions.core.results import StageResult, Table

STAGE = "schema infer"


def infer(data: str | os.PathLike, out: str | os.PathLike, *,
          max_categories: int = 20) -> StageResult:
    """Infer a pandera schema from ``data`` and write it to ``out`` (YAML)."""
    from mlcd_actions.data import schemas

    inferred = schemas.write_inferred(data, out, max_categories=max_categories)
    schema, notes, target = inferred.schema, inferred.notes, inferred.target
    source = os.fspath(data)
    result = StageResult(STAGE)
    if inferred.dropped:
        result.warnings.append("dropped inferred checks the data itself fails: "
                               + "; ".join(inferred.dropped))
    for n in notes:
        if n.nulls == n.rows:
            result.warnings.append(f"column {n.column!r} is entirely null in {data}: "
                                   "set its dtype and nullable by hand")
    rows = []
    for name, column in schema.columns.items():
        note = next((n for n in notes if n.column == str(name)), None)
        rows.append([name, str(column.dtype), "yes" if column.nullable else "no",
                     ", ".join(_check_text(c) for c in column.checks),
                     note.note if note else ""])
    result.tables.append(Table("inferred schema", ["column", "dtype", "nullable", "checks", "note"],
                               rows, note=f"written to {target}"))
    categorical = sum(1 for c in schema.columns.values()
                      if any(ch.name == "isin" for ch in c.checks))
    result.metrics.update(rows=inferred.rows, columns=len(schema.columns),
                          categorical_columns=categorical,
                          checks=sum(len(c.checks) for c in schema.columns.values()))
    result.outputs["schema"] = os.fspath(target)
    result.artifacts.append(os.fspath(target))
    result.details["source_sha256"] = inferred.sha256
    result.reason = (f"wrote {target}: {len(schema.columns)} columns from {inferred.rows:,} "
                     f"rows of {source}")
    return result


def _check_text(check) -> str:
    stats = getattr(check, "statistics", None) or {}
    if check.name == "isin":
        values = list(stats.get("allowed_values", []))
        shown = ", ".join(str(v) for v in values[:6])
        return f"isin [{shown}{', …' if len(values) > 6 else ''}]"
    args = ", ".join(str(v) for v in stats.values())
    return f"{check.name}({args})" if args else str(check.name)

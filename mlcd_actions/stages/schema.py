"""``schema infer``: write a first pandera schema for a dataset.

The library behind ``mlcd schema infer DATA --out schema.yaml`` (DESIGN §2, §7). It
reads the data, infers a pandera ``DataFrameSchema`` (:func:`mlcd_actions.data.schemas.infer_schema`:
dtypes, nullable, observed ranges, allowed categories for low-cardinality strings), and
writes it atomically as pandera's own YAML (:mod:`pandera.io`), with comments, so that
``pandera.io.from_yaml`` and ``mlcd validate --schema`` both load it.

Before writing, the schema is checked against the data it came from: a check that its
own data fails (a quirk of a dtype round trip) is dropped with a warning rather than
written. An existing schema file is replaced only when the new one is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlcd_actions.core.errors import ConfigError, DataError, StageFailed
from mlcd_actions.core.results import StageResult, Table

STAGE = "schema infer"


def infer(data: str | os.PathLike, out: str | os.PathLike, *,
          max_categories: int = 20) -> StageResult:
    """Infer a pandera schema from ``data`` and write it to ``out`` (YAML)."""
    from mlcd_actions.core import files as fsutil
    from mlcd_actions.data import schemas
    from mlcd_actions.data import tables as tabular

    target = Path(out)
    if target.suffix.lower() not in schemas.YAML_SUFFIXES:
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
        schema, notes = schemas.infer_schema(df, max_categories=max_categories)
    except DataError as exc:
        raise DataError(f"{data}: {exc.message}") from exc
    sha = fsutil.sha256_file(files[0]) if len(files) == 1 else None
    source = os.fspath(data)

    # the schema must accept the data it was inferred from
    dropped: list[str] = []
    for _ in range(3):
        text = schemas.render_yaml(schema, notes, source=source, sha256=sha)
        loaded = _reload(text, target)
        outcome = schemas.validate(schemas.FrameSource(df, source), loaded)
        if outcome.valid:
            break
        for g in outcome.groups:
            if schemas.check_key(g.check) == "dtype" or g.column not in schema.columns:
                raise StageFailed(f"{data}: column {g.column!r}: pandera does not accept its own "
                                  f"inferred {g.check} ({g.message or g.values})")
            col = schema.columns[g.column]
            kept = [c for c in col.checks if str(c.name) != schemas.check_key(g.check)
                    and not g.check.startswith(f"{c.name}(")]
            if g.check == "not_nullable":
                schema = schema.update_column(g.column, nullable=True)
            else:
                schema = schema.update_column(g.column, checks=kept)
            dropped.append(f"{g.column}: {g.check}")
    else:  # pragma: no cover - three rounds always settle: each drops a failing check
        raise StageFailed(f"{data}: the inferred schema does not accept its own data")

    fsutil.write_text(target, text)

    result = StageResult(STAGE)
    if dropped:
        result.warnings.append("dropped inferred checks the data itself fails: " + "; ".join(dropped))
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
    result.metrics.update(rows=len(df), columns=len(schema.columns),
                          categorical_columns=categorical,
                          checks=sum(len(c.checks) for c in schema.columns.values()))
    result.outputs["schema"] = os.fspath(target)
    result.artifacts.append(os.fspath(target))
    result.details["source_sha256"] = sha
    result.reason = (f"wrote {target}: {len(schema.columns)} columns from {len(df):,} rows of "
                     f"{source}")
    return result


def _reload(text: str, target: Path):
    """Parse the rendered YAML exactly as ``mlcd validate`` will (pandera.io)."""
    import tempfile

    from mlcd_actions.data import schemas

    with tempfile.TemporaryDirectory(prefix="mlcd-schema-") as tmp:
        probe = Path(tmp) / target.name
        probe.write_text(text, encoding="utf-8")
        loaded = schemas.load_schema(os.fspath(probe))
    loaded.file = os.fspath(target)
    return loaded


def _check_text(check) -> str:
    stats = getattr(check, "statistics", None) or {}
    if check.name == "isin":
        values = list(stats.get("allowed_values", []))
        shown = ", ".join(str(v) for v in values[:6])
        return f"isin [{shown}{', …' if len(values) > 6 else ''}]"
    args = ", ".join(str(v) for v in stats.values())
    return f"{check.name}({args})" if args else str(check.name)

"""``mlcd validate --engine spark``: the pandera schema checked on a Spark DataFrame.

The schema file is the one the pandas engine reads (YAML/JSON or Python, loaded by
:func:`mlcd_actions.data.schemas.load_schema`); the result is the same
:class:`~mlcd_actions.data.schemas.Outcome` (one group per failing column and check, with its
count, the first rows and their values), so the failure table, the verdict line and the
annotations on schema lines are those of the pandas engine.

How each part is checked:

* **structure** (a required column missing, an extra column under ``strict``, order) —
  from the column names, with the pandas engine's code (:func:`mlcd_actions.data.schemas.validate.structure`);
* **dtypes** — pandera's PySpark backend (``pandera.pyspark``): the schema is translated
  (:func:`to_pyspark`: ``int64`` -> ``LongType``, ``float64`` -> ``DoubleType``, ``str`` ->
  ``StringType``...) and validated at ``SCHEMA_ONLY`` depth, which reads no data;
* **values** — pandera's PySpark checks say only pass or fail, so the counts come from
  one Spark aggregation over the whole table for every check of every column at once
  (:func:`condition` is each built-in check as a Spark column: ``in_range``, ``isin``,
  ``notin``, ``eq``/``ne``/``gt``/``ge``/``lt``/``le``, ``str_matches``, ``str_contains``,
  ``str_startswith``, ``str_endswith``, ``str_length``), nulls and NaN counted by
  ``nullable`` and skipped by the checks, as pandera does on pandas; ``unique`` is one
  ``groupBy`` per unique column; then, for failing checks only, the first rows in file
  order. Custom (non built-in) element-wise checks of a Python schema run on pandas
  batches in the executors (``mapInPandas``); a check that reduces a column to one
  boolean cannot be split over batches and is refused (exit 2) with its name.

Everything is exact: counts, rows and values equal the pandas engine's.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.data.schemas import SAMPLE_ROWS, FailureGroup, LoadedSchema, Outcome

# pandas dtype name (pandera's str()) -> Spark type names that hold it
_SPARK_OF = {
    "int64": ("bigint",), "int32": ("int",), "int16": ("smallint",), "int8": ("tinyint",),
    "uint64": ("bigint", "decimal(20,0)"), "uint32": ("bigint",), "uint16": ("int",),
    "uint8": ("smallint",),
    "float64": ("double",), "float32": ("float",),
    "bool": ("boolean",), "boolean": ("boolean",),
    "str": ("string",), "string": ("string",), "object": ("string",),
    "string[pyarrow]": ("string",), "string[python]": ("string",), "category": ("string",),
    "datetime64[ns]": ("timestamp", "timestamp_ntz"), "datetime64[us]": ("timestamp", "timestamp_ntz"),
    "datetime64[ms]": ("timestamp", "timestamp_ntz"), "date": ("date",),
}
# Spark type name -> the pandas dtype the pandas engine would see (for the failure value)
_PANDAS_OF = {"bigint": "int64", "int": "int32", "smallint": "int16", "tinyint": "int8",
              "double": "float64", "float": "float32", "boolean": "bool", "string": "str",
              "timestamp": "datetime64[ns]", "timestamp_ntz": "datetime64[ns]",
              "date": "object"}
_FLOATS = ("double", "float")
BUILTIN = {"equal_to", "not_equal_to", "greater_than", "greater_than_or_equal_to", "less_than",
           "less_than_or_equal_to", "in_range", "isin", "notin", "str_matches", "str_contains",
           "str_startswith", "str_endswith", "str_length"}


def validate(table: Any, loaded: LoadedSchema) -> Outcome:
    """Validate ``table`` (:class:`mlcd_actions.data.spark.session.Table`) against ``loaded``."""
    schemas = _schemas_validate()

    schema = loaded.schema
    _supported(loaded)
    names = table.names
    groups: dict[tuple, FailureGroup] = {}
    schemas.structure(table, loaded, groups)
    plan = schemas.plan(schema, names)
    types = {f.name: f.dataType.simpleString() for f in table.df.schema.fields}
    view = _View(table, _coercions(plan, types, schema.coerce))
    types.update({n: t for n, (_, t) in view.casts.items()})

    with _not_a_doctest():  # pandera imports pyspark.sql.connect lazily, here too
        _dtypes(view, loaded, plan, types, groups)
    specs = _coercion_specs(view, plan) + _specs(plan, types, view)
    counts = _count(view, plan, specs, schema)
    failing = [s for s in specs if counts.get(s.key)]
    if failing:
        _samples(view, failing, counts, groups)
    custom = [(name, column, check) for name, column in plan for check in column.checks
              if check.name not in BUILTIN]
    if custom:
        _custom(view, custom, groups, loaded)
    key_for = {name: str(column.name) for name, column in plan}
    for g in groups.values():
        g.schema_key = key_for.get(g.column, g.column) if g.column is not None else None
    ordered = sorted(groups.values(), key=lambda g: (schemas._order(g.column, names), g.check))
    return Outcome(table.rows, names, [n for n, _ in plan], ordered, "spark")


def _supported(loaded: LoadedSchema) -> None:
    """Schema parts a Spark DataFrame has no counterpart for are refused, never skipped."""
    schema = loaded.schema
    if schema.index is not None:
        raise ConfigError(f"{loaded.file}: the schema checks an index; a Spark DataFrame has "
                          "none (use --engine pandas, or drop the index from the schema)",
                          file=loaded.file, line=loaded.line_of(None, "index"))
    if schema.checks:
        raise ConfigError(f"{loaded.file}: dataframe-wide checks run on pandas only (use "
                          "--engine pandas, or move them to columns)", file=loaded.file,
                          line=loaded.line_of(None, "checks"))


class _View:
    """The table with coerced columns: ``__mlcd_cast_<i>`` beside each original."""

    def __init__(self, table: Any, casts: dict[str, tuple[str, str]]) -> None:
        self.table = table
        self.casts = casts                 # column -> (cast column, Spark type)
        self.raw_types = {f.name: f.dataType.simpleString() for f in table.df.schema.fields}
        self.names = table.names
        self.spark = table.spark
        self.df = self._extend(table.df)

    @property
    def rows(self) -> int:
        return self.table.rows

    def _extend(self, df: Any) -> Any:
        from pyspark.sql import functions as F

        if not self.casts:
            return df
        return df.select("*", *[F.expr(f"try_cast(`{n}` AS {t})").alias(c)
                                for n, (c, t) in self.casts.items()])

    def indexed(self) -> Any:
        return self._extend(self.table.indexed())

    def col(self, name: str) -> str:
        """The column the checks read: the coerced one where the schema coerces."""
        return self.casts[name][0] if name in self.casts else name


def _coercions(plan: list, types: dict[str, str], coerce_all: bool) -> dict[str, tuple[str, str]]:
    casts = {}
    for i, (name, column) in enumerate(plan):
        if column.dtype is None or not (column.coerce or coerce_all):
            continue
        spark = _SPARK_OF.get(_dtype_name(column.dtype))
        if spark and types.get(name) not in spark:
            casts[name] = (f"__mlcd_cast_{i}", spark[0])
    return casts


def _coercion_specs(view: _View, plan: list) -> list[_Spec]:
    """Values that cannot be coerced to the schema's dtype, as pandas reports them: one
    ``coerce_dtype(...)`` and one ``dtype(...)`` failure per value."""
    from pyspark.sql import functions as F

    specs = []
    for i, (name, column) in enumerate(plan):
        if name not in view.casts:
            continue
        cast = F.col(view.casts[name][0])
        fail = F.col(f"`{name}`").isNotNull() & cast.isNull()
        dtype = _dtype_name(column.dtype)
        specs.append(_Spec(f"k{i}", name, f"coerce_dtype('{dtype}')", fail))
        specs.append(_Spec(f"d{i}", name, f"dtype('{dtype}')", fail))
    return specs


def _schemas_validate() -> Any:
    """The pandas engine's validation module (the package re-exports its ``validate``
    function under the module's name, so it is fetched by its full name)."""
    import importlib

    return importlib.import_module("mlcd_actions.data.schemas.validate")


# --------------------------------------------------------------------------- dtypes

def to_pyspark(loaded: LoadedSchema, names: list[str], types: dict[str, str]) -> Any:
    """The schema's columns and dtypes as a ``pandera.pyspark.DataFrameSchema``."""
    from pyspark.sql import types as T

    pas = pandera_pyspark()

    parse = T._parse_datatype_string
    columns = {}
    for name, column in schemas_plan(loaded, names):
        if column.dtype is None:
            continue
        spark = _SPARK_OF.get(_dtype_name(column.dtype))
        if spark is None:
            raise ConfigError(f"{loaded.file}: column {name!r}: dtype {column.dtype} has no "
                              "Spark counterpart for --engine spark", file=loaded.file,
                              line=loaded.line_of(name, "dtype"))
        # a dtype with several Spark forms (timestamps): the one the data has, if it is one
        want = types.get(name) if types.get(name) in spark else spark[0]
        columns[name] = pas.Column(parse(want), nullable=True, name=name)
    return pas.DataFrameSchema(columns, name=loaded.schema.name)


def pandera_pyspark() -> Any:
    """``pandera.pyspark``, importable even where pandas-on-Spark (``pyspark.pandas``) is not.

    pandera's PySpark API names ``pyspark.pandas.DataFrame`` in its type unions, and
    pyspark 4.3's ``pyspark.pandas`` does not import under pandas 3. The SQL DataFrame
    backend that mlcd uses needs none of it, so while pandera is imported, placeholder
    classes stand in for the three names (removed again afterwards: ``import pyspark.pandas``
    elsewhere fails as it did)."""
    import sys
    import types

    with _not_a_doctest():
        return _import_pandera_pyspark(sys, types)


@contextlib.contextmanager
def _not_a_doctest():
    """pandera imports ``pyspark.sql.connect``, whose dependency check takes a process whose
    ``__main__`` has neither ``__spec__`` nor ``__file__`` (pytest-xdist/execnet workers,
    embedded interpreters) for pyspark's own doctest run and calls ``sys.exit(0)`` when
    Spark Connect's packages are missing. ``sys.ps1`` (set only while pandera imports)
    tells it this is not a doctest; the missing packages then raise ImportError, which
    pandera handles (no Spark Connect)."""
    import sys

    main = sys.modules.get("__main__")
    guess = (main is not None and getattr(main, "__spec__", None) is None
             and not hasattr(main, "__file__") and not hasattr(sys, "ps1"))
    if guess:
        sys.ps1 = ""
    try:
        yield
    finally:
        if guess:
            del sys.ps1


def _import_pandera_pyspark(sys: Any, types: Any) -> Any:
    try:
        import pandera.pyspark as pas

        return pas
    except ImportError:
        pass
    for name in [k for k in sys.modules if k == "pyspark.pandas" or k.startswith("pyspark.pandas.")]:
        del sys.modules[name]
    stub = types.ModuleType("pyspark.pandas")
    for cls in ("DataFrame", "Series", "Index"):
        setattr(stub, cls, type(cls, (), {"__module__": "pyspark.pandas"}))
    sys.modules["pyspark.pandas"] = stub
    try:
        for name in [k for k in sys.modules if k.startswith(("pandera.pyspark", "pandera.api.pyspark",
                                                            "pandera.typing.pyspark"))]:
            del sys.modules[name]
        import pandera.pyspark as pas
    finally:
        del sys.modules["pyspark.pandas"]
    return pas


def schemas_plan(loaded: LoadedSchema, names: list[str]) -> list[tuple[str, Any]]:
    schemas = _schemas_validate()

    return schemas.plan(loaded.schema, names)


def _dtype_name(dtype: Any) -> str:
    text = str(dtype)
    return {"string": "str"}.get(text, text)


def _dtypes(table: Any, loaded: LoadedSchema, plan: list, types: dict[str, str],
            groups: dict) -> None:
    """Wrong column types, found by pandera's PySpark backend (schema level only); a
    coerced column is checked as coerced (its failures are counted per value)."""
    from pandera.config import ValidationDepth, config_context
    from pyspark.sql import functions as F

    schemas = _schemas_validate()

    pyspark_schema = to_pyspark(loaded, table.names, types)
    if not pyspark_schema.columns:
        return
    present = [n for n in pyspark_schema.columns if n in table.names]
    frame = table.df.select(*[F.col(table.col(n)).alias(n) for n in present])
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        out = pyspark_schema.validate(frame, lazy=True)
    errors = (getattr(out, "pandera", None) and out.pandera.errors) or {}
    for reason, items in errors.get("SCHEMA", {}).items():
        if reason != "WRONG_DATATYPE":
            continue
        for item in items:
            column = str(item.get("column"))
            wanted = _dtype_name(next(c.dtype for n, c in plan if n == column))
            got = _PANDAS_OF.get(types.get(column, ""), types.get(column, "?"))
            schemas._add(groups, column, f"dtype('{wanted}')", "Column", 1, [], [got], None,
                         f"expected series '{column}' to have type {wanted}, got {got}")


# --------------------------------------------------------------------------- value checks

class _Spec:
    """One countable condition: ``fail`` is a Spark column true on each failing row."""

    def __init__(self, key: str, column: str, check: str, fail: Any,
                 together: list[str] | None = None) -> None:
        self.key, self.column, self.check, self.fail = key, column, check, fail
        self.together = together or [column]     # uniqueness: the columns that must be


def _specs(plan: list, types: dict[str, str], view: _View) -> list[_Spec]:
    from pyspark.sql import functions as F

    specs: list[_Spec] = []
    for i, (name, column) in enumerate(plan):
        c = F.col(f"`{view.col(name)}`")
        kind = types.get(name, "")
        missing = c.isNull() | F.isnan(c) if kind in _FLOATS else c.isNull()
        if not column.nullable:      # a value that failed coercion is not a null
            raw = F.col(f"`{name}`")
            null = missing if name not in view.casts else raw.isNull() | (
                F.isnan(raw) if view.raw_types.get(name) in _FLOATS else F.lit(False))
            specs.append(_Spec(f"n{i}", name, "not_nullable", null))
        for j, check in enumerate(column.checks):
            if check.name not in BUILTIN:
                continue
            cond = condition(check.name, check.statistics, c, kind)
            label = str(check.error or check.name)
            specs.append(_Spec(f"c{i}_{j}", name, label,
                               F.coalesce(~missing & ~cond, F.lit(False))))
    return specs


def condition(name: str, stats: dict[str, Any], c: Any, kind: str = "") -> Any:
    """A built-in pandera check as a Spark condition (true where the value passes)."""
    from pyspark.sql import functions as F

    if name == "equal_to":
        return c == F.lit(stats["value"])
    if name == "not_equal_to":
        return c != F.lit(stats["value"])
    if name == "greater_than":
        return c > F.lit(stats["min_value"])
    if name == "greater_than_or_equal_to":
        return c >= F.lit(stats["min_value"])
    if name == "less_than":
        return c < F.lit(stats["max_value"])
    if name == "less_than_or_equal_to":
        return c <= F.lit(stats["max_value"])
    if name == "in_range":
        lo, hi = F.lit(stats["min_value"]), F.lit(stats["max_value"])
        low = c >= lo if stats.get("include_min", True) else c > lo
        high = c <= hi if stats.get("include_max", True) else c < hi
        return low & high
    if name in ("isin", "notin"):
        values = list(stats.get("allowed_values" if name == "isin" else "forbidden_values"))
        inside = c.isin(values) if values else F.lit(False)
        return inside if name == "isin" else ~inside
    text = c.cast("string")
    if name == "str_matches":
        return text.rlike(f"^(?:{_java_regex(stats['pattern'])})")
    if name == "str_contains":
        return text.rlike(_java_regex(stats["pattern"]))
    if name == "str_startswith":
        return text.startswith(stats["string"])
    if name == "str_endswith":
        return text.endswith(stats["string"])
    if name == "str_length":
        n = F.length(text)
        exact = stats.get("exact_value")
        if exact is not None:
            return n == F.lit(exact)
        ok = F.lit(True)
        if stats.get("min_value") is not None:
            ok = ok & (n >= F.lit(stats["min_value"]))
        if stats.get("max_value") is not None:
            ok = ok & (n <= F.lit(stats["max_value"]))
        return ok
    raise ConfigError(f"check {name!r} has no Spark form")


def _java_regex(pattern: Any) -> str:
    """Python regex -> Java regex: the common syntax is shared; named groups differ."""
    text = pattern.pattern if hasattr(pattern, "pattern") else str(pattern)
    return re.sub(r"\(\?P<", "(?<", text)


def _count(view: _View, plan: list, specs: list[_Spec], schema: Any) -> dict[str, int]:
    """Failing rows of every condition, plus duplicated values of unique columns."""
    from pyspark.sql import functions as F

    counts: dict[str, int] = {}
    if specs:
        aggs = [F.sum(F.when(s.fail, 1).otherwise(0)).alias(s.key) for s in specs]
        row = view.df.agg(*aggs).collect()[0]
        counts.update({s.key: int(row[s.key] or 0) for s in specs})
    uniques = [(f"u{i}", [name], "field_uniqueness") for i, (name, column) in enumerate(plan)
               if column.unique]
    together = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique or ())
    if together and all(c in view.names for c in together):
        uniques.append(("m", together, "multiple_fields_uniqueness"))
    for key, columns, check in uniques:
        cols = [F.col(f"`{view.col(c)}`") for c in columns]
        dup = (view.df.groupBy(*cols).count().where(F.col("count") > 1)
               .agg(F.sum("count").alias("n")).collect()[0]["n"])
        if dup:
            for j, c in enumerate(columns):
                counts[f"{key}_{j}"] = int(dup)
                specs.append(_Spec(f"{key}_{j}", c, check, None, together=columns))
    return counts


def _samples(table: Any, failing: list[_Spec], counts: dict[str, int], groups: dict) -> None:
    """The first :data:`SAMPLE_ROWS` failing rows of each failing check, in file order, with
    the values they show: one job for every value check, one per failing unique check."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    schemas = _schemas_validate()
    from mlcd_actions.data.spark.session import ROW

    indexed = table.indexed()
    columns = sorted({s.column for s in failing})
    shown = [F.col(f"`{c}`").alias(f"__c{j}") for j, c in enumerate(columns)]
    first: dict[str, list[int]] = {}
    values: dict[int, dict[str, Any]] = {}

    def keep(rows: list) -> None:
        for r in rows:
            values[int(r[ROW])] = {c: r[f"__c{j}"] for j, c in enumerate(columns)}

    plain = [s for s in failing if s.fail is not None]
    if plain:   # one job: the failing checks of each row (nulls dropped before the explode),
        # the first rows of each check (a window top-k) with the values they show
        which = F.explode(F.array_compact(F.array(*[F.when(s.fail, F.lit(i))
                                                    for i, s in enumerate(plain)])))
        found = (indexed.select(F.col(ROW), which.alias("__k"), *shown)
                 .withColumn("__n", F.row_number().over(Window.partitionBy("__k").orderBy(ROW)))
                 .where(F.col("__n") <= SAMPLE_ROWS).collect())
        keep(found)
        for r in sorted(found, key=lambda r: r[ROW]):
            first.setdefault(plain[r["__k"]].key, []).append(int(r[ROW]))
    done: dict[tuple, list[int]] = {}
    for s in failing:
        if s.fail is None:          # duplicated values of a unique column (or columns)
            key = tuple(s.together)
            if key not in done:
                cols = [F.col(f"`{table.col(c)}`") for c in s.together]
                names = [f"__v{j}" for j in range(len(cols))]
                dups = indexed.groupBy(*[c.alias(n) for c, n in zip(cols, names, strict=True)]) \
                              .count().where(F.col("count") > 1).drop("count")
                cond = None
                for c, n in zip(cols, names, strict=True):
                    eq = c.eqNullSafe(dups[n])
                    cond = eq if cond is None else cond & eq
                part = indexed.join(dups, cond, "left_semi")
                rows = part.select(ROW, *shown).orderBy(ROW).limit(SAMPLE_ROWS).collect()
                keep(rows)
                done[key] = [int(r[ROW]) for r in rows]
            first[s.key] = done[key]
    for s in failing:
        rows = first.get(s.key, [])
        texts = [schemas._short(_value(values[r][s.column])) for r in rows if r in values]
        schemas._add(groups, s.column, s.check, "Column", counts[s.key], rows, texts, None, "")


def _value(value: Any) -> Any:
    if value is None:
        return float("nan")
    return value


# --------------------------------------------------------------------------- custom checks

def _custom(table: Any, custom: list, groups: dict, loaded: LoadedSchema) -> None:
    """Element-wise custom checks on pandas batches in the executors."""
    import pandas as pd
    from pyspark.sql import functions as F

    schemas = _schemas_validate()
    from mlcd_actions.data.spark.session import ROW

    labels = [str(check.error or check.name) for _, _, check in custom]
    for (name, _, check), label in zip(custom, labels, strict=True):
        if getattr(check, "groupby", None) is not None:
            raise ConfigError(f"{loaded.file}: column {name!r}: check {label} groups rows; "
                              "--engine spark runs element-wise checks only",
                              file=loaded.file, line=loaded.line_of(name, check.name))
    from pyspark import cloudpickle

    cols = sorted({name for name, _, _ in custom})
    _ship_schema_modules()
    payload = cloudpickle.dumps([(name, check) for name, _, check in custom])
    checks = [(name, check) for name, _, check in custom]

    def run(batches):
        # unpickled here, after pandera.pyspark is importable in this worker (see
        # pandera_pyspark): a check of a DataFrameModel drags pandera's registries along
        pandera_pyspark()
        checks = cloudpickle.loads(payload)
        for pdf in batches:
            out = {"k": [], "row": [], "value": []}
            for k, (name, check) in enumerate(checks):
                series = pdf[name]
                known = series.notna() if check.ignore_na else pd.Series(True, index=series.index)
                result = check(series[known]).check_output
                if not isinstance(result, pd.Series):
                    raise ConfigError(f"check {labels[k]} on column {name!r} reduces the column "
                                      "to one value; --engine spark runs element-wise checks "
                                      "only")
                bad = ~result.reindex(series[known].index).fillna(False).astype(bool)
                idx = bad[bad].index
                out["k"].extend([k] * len(idx))
                out["row"].extend(pdf.loc[idx, ROW].tolist())
                out["value"].extend(str(v) for v in series.loc[idx].tolist())
            yield pd.DataFrame(out)

    failures = (table.indexed().select(*[F.col(f"`{table.col(c)}`").alias(c) for c in cols],
                                       F.col(ROW))
                .mapInPandas(run, "k int, row long, value string"))
    n_of = {r["k"]: int(r["n"]) for r in
            failures.groupBy("k").agg(F.count(F.lit(1)).alias("n")).collect()}
    for k in sorted(n_of):
        first = failures.where(F.col("k") == k).orderBy("row").limit(SAMPLE_ROWS).collect()
        schemas._add(groups, checks[k][0], labels[k], "Column", n_of[k],
                     [int(x["row"]) for x in first],
                     [schemas._short(x["value"]) for x in first], None, "")


# --------------------------------------------------------------------------- the stage's engine

class SparkEngine:
    """What ``validate.run`` asks of an engine, on a Spark session."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    @classmethod
    @contextlib.contextmanager
    def start(cls, data: Any, reference: Any, settings: Any, schema: str):
        """Check the inputs as the pandas engine does (same order, same lines) before a
        session is started; yield ``(engine, loaded schema)``."""
        from mlcd_actions.data import schemas
        from mlcd_actions.data.spark import session

        session.available()
        if reference is not None:
            session.kind_of(reference)
        loaded = schemas.load_schema(schema)
        session.kind_of(data)
        with session.session(settings, "mlcd validate") as spark:
            yield cls(spark), loaded

    def open(self, data: Any) -> Any:
        from mlcd_actions.data.spark import session

        return session.open_table(self.spark, data)

    def validate(self, table: Any, loaded: LoadedSchema) -> Outcome:
        return validate(table, loaded)

    def reference(self, path: Any) -> tuple[Any, list[str]]:
        from mlcd_actions.core.errors import DataError
        from mlcd_actions.data.spark import session

        table = session.open_table(self.spark, path, what="reference")
        if table.rows == 0:
            raise DataError(f"{path}: reference dataset is empty (0 rows); cannot compare skew")
        return table, table.names

    def compare(self, ref: Any, cur: Any, **kwargs: Any) -> list:
        from mlcd_actions.data.spark import drift

        return drift.compare(ref.df, cur.df, names=(ref.path, cur.path), **kwargs)


def _ship_schema_modules() -> None:
    """A schema loaded from a ``.py`` file lives in a module the executors cannot import
    (``_mlcd_schema_<hash>``): its classes and check functions travel by value
    (cloudpickle) instead of by name."""
    import sys

    from pyspark import cloudpickle

    for name, module in list(sys.modules.items()):
        if name.startswith("_mlcd_schema_") and module is not None:
            cloudpickle.register_pickle_by_value(module)

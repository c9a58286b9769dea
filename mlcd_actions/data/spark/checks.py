"""``mlcd check-data --engine spark``: the bias tables as Spark aggregations and the PII
scan in the executors.

* **PII** — every text (and integer) column goes through :func:`mlcd_actions.data.pii.scan_frame`,
  the pandas engine's scanner (same patterns, Luhn and mod-97 validation, masking), on
  Arrow batches in the executors (``mapInPandas``); each batch sends back, per column and
  kind, its count, its first rows (global row numbers, see
  :meth:`mlcd_actions.data.spark.session.Table.indexed`) and their masked examples, never a
  raw value. The driver adds the counts and keeps the first rows, so counts, rows and
  examples equal the pandas engine's. ``must-be-hashed`` columns are checked in the same
  pass (:func:`mlcd_actions.data.pii.unhashed`). An integer column holding nulls is not
  scanned, as with pandas (where it becomes floats).
* **bias** — group sizes, labelled rows and label counts per group from one ``groupBy``
  per sensitive feature; a numeric feature with more than
  :data:`~mlcd_actions.data.bias.MAX_NUMERIC_GROUPS` values is cut at its exact quartiles
  (Spark's ``percentile``, linear interpolation as pandas ``qcut``; it keeps one count per
  distinct value, which suits features such as age or income bands), with pandas' own
  interval labels. Metrics are those of :mod:`mlcd_actions.data.bias`: exact.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from mlcd_actions.core.errors import DataError
from mlcd_actions.data import bias, pii

_INTEGRAL = ("tinyint", "smallint", "int", "bigint")
_TEXT = ("string",)
_DATES = ("date", "timestamp", "timestamp_ntz")


class _Rows:
    """The rows one batch of the scan sends back (no raw value: rows and masked examples)."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows
        self.columns: dict[str, list] = {"c": [], "k": [], "n": [], "nn": [], "b": [],
                                         "rows": [], "ex": [], "hint": []}

    def emit(self, col: str, kind: int, count: int, non_null: int, nbytes: int,
             positions: list[int], examples: list[str], hint: bool) -> None:
        out = self.columns
        out["c"].append(col)
        out["k"].append(kind)
        out["n"].append(int(count))
        out["nn"].append(int(non_null))
        out["b"].append(int(nbytes))
        out["rows"].append([int(self.rows[p]) for p in positions])
        out["ex"].append(list(examples) + [None] * (len(positions) - len(examples)))
        out["hint"].append(bool(hint))


class SparkData:
    """What ``check_data.run`` asks of its data, on a Spark table."""

    engine = "spark"

    def __init__(self, table: Any) -> None:
        self.table = table
        self.columns = list(table.names)
        self._types = {f.name: f.dataType.simpleString() for f in table.df.schema.fields}

    @classmethod
    @contextlib.contextmanager
    def start(cls, data: Any, settings: Any):
        from mlcd_actions.data.spark import session

        session.kind_of(data)            # a missing local path: the pandas engine's line
        with session.session(settings, "mlcd check-data") as spark:
            yield cls(session.open_table(spark, data))

    @property
    def rows(self) -> int:
        return self.table.rows

    # ------------------------------------------------------------------ PII

    def scan(self, hashed: list[str],
             on_progress: Callable[[int], None] | None = None) -> tuple[pii.ScanResult, dict]:
        """The PII scan of every column, and ``{column: (count, rows, examples)}`` of the
        values of ``hashed`` columns that are not hashes."""
        from pyspark.sql import functions as F

        from mlcd_actions.data.spark.session import ROW

        t0 = time.perf_counter()
        df = self.table.df
        integral = [c for c in self.columns if self._types[c] in _INTEGRAL]
        with_nulls = set()
        if integral:
            row = df.agg(*[F.count(F.when(F.col(f"`{c}`").isNull(), 1)).alias(f"n{i}")
                           for i, c in enumerate(integral)]).collect()[0]
            with_nulls = {c for i, c in enumerate(integral) if row[f"n{i}"]}
        scan_cols = [c for c in self.columns if c not in with_nulls and (
            self._types[c] in _TEXT + _INTEGRAL + _DATES
            or (self._types[c] not in ("double", "float", "boolean")
                and not self._types[c].startswith("decimal")))]
        hashed = [c for c in hashed if c in self.columns]
        wanted = list(dict.fromkeys(scan_cols + hashed))
        if not wanted:
            return pii.ScanResult([], 0, self.rows, [], time.perf_counter() - t0), {}
        kinds = {k: i for i, k in enumerate(pii.KINDS)}
        unhashed_kind = len(pii.KINDS)

        def scan_batches(batches):
            import pandas as pd

            for pdf in batches:
                out = _Rows(pdf[ROW].to_numpy())
                emit = out.emit
                frame = pdf[scan_cols]
                result = pii.scan_frame(frame)
                for col in result.columns:       # one summary row per scanned column
                    emit(col, -1, 0, int(frame[col].notna().sum()), 0, [], [], False)
                emit("", -1, 0, 0, result.bytes_scanned, [], [], False)
                for hit in result.hits:
                    emit(hit.column, kinds[hit.kind], hit.count, 0, 0, hit.rows, hit.examples,
                         hit.by_name)
                for col in hashed:
                    count, positions, examples = pii.unhashed(pdf[col].reset_index(drop=True))
                    if count:
                        emit(col, unhashed_kind, count, 0, 0, positions, examples, False)
                yield pd.DataFrame(out.columns)

        schema = ("c string, k int, n long, nn long, b long, rows array<long>, "
                  "ex array<string>, hint boolean")
        indexed = self.table.indexed().select(*[F.col(f"`{c}`") for c in wanted], F.col(ROW))
        spark = self.table.spark
        key = "spark.sql.execution.arrow.maxRecordsPerBatch"
        before = spark.conf.get(key, None)
        spark.conf.set(key, str(pii.CHUNK_ROWS))
        try:
            parts = indexed.mapInPandas(scan_batches, schema).collect()
        finally:
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)
        return self._merge(parts, scan_cols, hashed, unhashed_kind, on_progress, t0)

    def _merge(self, parts: list, scan_cols: list[str], hashed: list[str], unhashed_kind: int,
               on_progress: Callable[[int], None] | None, t0: float) -> tuple[pii.ScanResult, dict]:
        non_null: dict[str, int] = {}
        scanned: set[str] = set()
        total = 0
        found: dict[tuple[str, int], dict] = {}
        for r in parts:
            if r["k"] == -1:
                if r["c"]:
                    scanned.add(r["c"])
                    non_null[r["c"]] = non_null.get(r["c"], 0) + r["nn"]
                else:
                    total += r["b"]
                    if on_progress:
                        on_progress(r["b"])
                continue
            acc = found.setdefault((r["c"], r["k"]), {"n": 0, "pairs": [], "hint": r["hint"]})
            acc["n"] += r["n"]
            acc["pairs"].extend(zip(r["rows"], r["ex"], strict=True))
        hits = []
        order = {c: i for i, c in enumerate(self.columns)}
        for (col, k), acc in sorted(found.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
            if k == unhashed_kind:
                continue
            pairs = sorted(acc["pairs"])[:pii.MAX_ROWS]
            examples = [e for _, e in pairs if e is not None][:pii.MAX_EXAMPLES]
            hits.append(pii.Hit(col, pii.KINDS[k], acc["n"], non_null.get(col, 0),
                                [p for p, _ in pairs], examples, by_name=acc["hint"]))
        unhashed = {}
        for col in hashed:
            acc = found.get((col, unhashed_kind))
            if acc is None:
                unhashed[col] = (0, [], [])
                continue
            pairs = sorted(acc["pairs"])[:pii.MAX_ROWS]
            unhashed[col] = (acc["n"], [p for p, _ in pairs],
                             [e for _, e in pairs if e is not None][:pii.MAX_EXAMPLES])
        columns = [c for c in scan_cols if c in scanned]
        return pii.ScanResult(hits, total, self.rows, columns, time.perf_counter() - t0), unhashed

    # ------------------------------------------------------------------ bias

    def feature_bias(self, feature: str, label: str | None, positive: Any = None) -> bias.FeatureBias:
        """:func:`mlcd_actions.data.bias.feature_bias` from Spark aggregations."""
        from pyspark.sql import functions as F

        df = self.table.df
        group, note = self._groups(feature)
        if label is None:
            counts = df.groupBy(group.alias("g")).count().collect()
            sizes = {r["g"]: int(r["count"]) for r in counts}
            return self._result(feature, sizes, note)
        y = F.col(f"`{label}`")
        ykind = self._types[label]
        known = y.isNotNull()
        if ykind in ("double", "float"):
            known = known & ~F.isnan(y) & (F.abs(y) != F.lit(float("inf")))
        kind = self._label_kind(label, known)
        if kind == "regression":
            rows = df.groupBy(group.alias("g")).agg(
                F.count(F.lit(1)).alias("n"), F.count(F.when(known, 1)).alias("l"),
                F.avg(F.when(known, y.cast("double"))).alias("m")).collect()
            sizes = {r["g"]: int(r["n"]) for r in rows}
            fb = self._result(feature, sizes, note)
            means = {r["g"]: float(r["m"]) for r in rows if r["l"]}
            if not means:
                fb.metrics.update(label_rate_gap=None)
                fb.note = (fb.note + "; " if fb.note else "") + f"label {label!r} has no values"
            else:
                for r in fb.groups:
                    r["label mean"] = means.get(r["group"])
                fb.metrics["label_mean_gap"] = (max(means.values()) - min(means.values())
                                                if len(means) > 1 else 0.0)
            labelled = {r["g"]: int(r["l"]) for r in rows}
            for r in fb.groups:
                r["labelled"] = labelled.get(r["group"], 0)
            return fb
        rows = df.groupBy(group.alias("g"), F.when(known, y).alias("y")).count().collect()
        sizes: dict[str, int] = {}
        per: dict[str, dict[Any, int]] = {}
        for r in rows:
            sizes[r["g"]] = sizes.get(r["g"], 0) + int(r["count"])
            if r["y"] is not None:
                per.setdefault(r["g"], {})[r["y"]] = int(r["count"])
        fb = self._result(feature, sizes, note)
        classes = sorted({c for counts in per.values() for c in counts}, key=str)
        if not classes:
            fb.metrics.update(label_rate_gap=None)
            fb.note = (fb.note + "; " if fb.note else "") + f"label {label!r} has no values"
        else:
            if len(classes) > bias.MAX_CLASSES:
                raise DataError(f"label {label!r} has {len(classes)} classes; label rates per "
                                f"group need at most {bias.MAX_CLASSES}")
            labelled = {g: sum(c.values()) for g, c in per.items()}
            rates = {c: {g: per[g].get(c, 0) / labelled[g] for g in per} for c in classes}
            gaps = [max(r.values()) - min(r.values()) for r in rates.values()]
            fb.metrics["label_rate_gap"] = max(gaps) if gaps else 0.0
            if len(classes) == 2:
                pos = bias.positive_class(classes, positive)
                top = max(rates[pos].values())
                fb.metrics["label_rate_ratio"] = (min(rates[pos].values()) / top) if top > 0 else 1.0
                for r in fb.groups:
                    r[f"rate of {label}={pos}"] = rates[pos].get(r["group"])
            else:
                for r in fb.groups:
                    r["label rates"] = ", ".join(
                        f"{c}: {rates[c].get(r['group'], 0.0):.3g}" for c in classes)
        for r in fb.groups:
            r["labelled"] = sum(per.get(r["group"], {}).values())
        return fb

    def _result(self, feature: str, sizes: dict[str, int], note: str | None) -> bias.FeatureBias:
        order = sorted(sizes, key=str)
        rows = [{"group": g, "size": sizes[g]} for g in order]
        metrics = {"min_group_size": float(min(sizes.values())), "groups": float(len(sizes))}
        return bias.FeatureBias(feature, rows, metrics, note)

    def _label_kind(self, label: str, known: Any) -> str:
        """:func:`mlcd_actions.data.bias.label_kind` as one aggregation."""
        from pyspark.sql import functions as F

        kind = self._types[label]
        if kind == "boolean" or not (kind in _INTEGRAL or kind in ("float", "double")
                                     or kind.startswith("decimal")):
            return "classification"
        y = F.col(f"`{label}`")
        aggs = [F.count_distinct(F.when(known, y)).alias("d")]
        if kind in ("float", "double"):
            aggs.append(F.sum(F.when(known & (y != F.floor(y)), 1).otherwise(0)).alias("frac"))
        r = self.table.df.agg(*aggs).collect()[0]
        if kind in ("float", "double") and r["frac"]:
            return "regression"
        return "classification" if r["d"] <= 20 else "regression"

    def _groups(self, feature: str) -> tuple[Any, str | None]:
        """The group of each row as text, as :func:`mlcd_actions.data.bias._groups` labels it."""
        import pandas as pd
        from pyspark.sql import functions as F

        c = F.col(f"`{feature}`")
        kind = self._types[feature]
        numeric = kind in _INTEGRAL or kind in ("float", "double") or kind.startswith("decimal")
        missing = c.isNull() | F.isnan(c) if kind in ("float", "double") else c.isNull()
        if numeric:
            distinct = self.table.df.agg(F.count_distinct(F.when(~missing, c)).alias("d")) \
                                    .collect()[0]["d"]
            if distinct > bias.MAX_NUMERIC_GROUPS:
                qs = self.table.df.agg(F.percentile(F.when(~missing, c.cast("double")),
                                                    [0.0, 0.25, 0.5, 0.75, 1.0]).alias("q")) \
                                  .collect()[0]["q"]
                edges = sorted(set(float(q) for q in qs))
                cats = pd.cut(pd.Series(edges, dtype=float), edges, include_lowest=True,
                              precision=3).cat.categories
                x = c.cast("double")
                label = F.lit(bias.MISSING)
                for i in range(len(edges) - 1, 0, -1):  # (e[i-1], e[i]]; the first one closed
                    inside = (x <= F.lit(edges[i])) & (
                        x >= F.lit(edges[0]) if i == 1 else x > F.lit(edges[i - 1]))
                    label = F.when(~missing & inside, F.lit(str(cats[i - 1]))).otherwise(label)
                return label, "numeric feature with many values: grouped into quartiles"
        if kind == "boolean":
            text = F.when(c, F.lit("True")).otherwise(F.lit("False"))
        elif kind in ("float", "double"):
            text = F.when(c == F.floor(c), F.format_string("%.1f", c)).otherwise(c.cast("string"))
        else:
            text = c.cast("string")
        return F.when(missing, F.lit(bias.MISSING)).otherwise(text), None

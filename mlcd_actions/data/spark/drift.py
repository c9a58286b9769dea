"""Drift statistics from Spark aggregations: the same :class:`~mlcd_actions.data.drift.ColumnDrift`
as :func:`mlcd_actions.data.drift.compare`, computed where the data is.

What is exact and what is approximate:

* **counts** (rows, nulls and NaN, infinities, PSI bin counts, category counts, new and
  missing categories) are exact, and so are chi-square, its p-value, Jensen–Shannon and
  L-infinity, which only need the category counts;
* **PSI bin edges** are the reference quantiles, from Spark's ``percentile_approx`` with
  accuracy :data:`ACCURACY` (a relative rank error of at most ``1 / ACCURACY`` = 1e-5:
  with 10M reference rows an edge is at most 100 rows away from the exact quantile's
  rank). Up to :data:`ACCURACY` finite reference values the edges are the exact ones the
  pandas engine picks, so PSI is identical; beyond, PSI differs from the pandas engine's
  by a few 1e-4 at most (the bins' shares move by at most ``2 / ACCURACY`` each);
* **KS** (the statistic) is exact: both samples are counted per distinct value, sorted by
  Spark (range partitioning), and the largest CDF gap is found from per-partition prefix
  sums, so no column is ever collected to the driver. Its p-value is computed from the
  statistic and the two sample sizes exactly as the pandas engine computes it (exact
  for ``n·m <= 10,000``, where the two small samples are collected and scipy's exact
  test is run on them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlcd_actions.core.errors import DataError
from mlcd_actions.data.drift import EXACT_KS_MAX, NUMERIC, ColumnDrift

ACCURACY = 100_000
KS_ROWS_PER_PARTITION = 4_000_000   # values per range partition of the exact KS sort
KS_MAX_PARTITIONS = 256
_NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double")


def is_numeric(df: Any, column: str) -> bool:
    kind = df.schema[column].dataType.simpleString()
    return kind in _NUMERIC_TYPES or kind.startswith("decimal")


def compare(ref: Any, cur: Any, *, columns: Sequence[str] | None = None,
            categorical: Iterable[str] | None = None, bins: int = 10,
            names: tuple[str, str] = ("reference", "current")) -> list[ColumnDrift]:
    """Drift of ``columns`` between two Spark DataFrames (default: the shared columns in
    reference order); ``names`` name the two sides in error messages."""
    if bins < 2:
        raise ValueError("bins must be at least 2")
    if columns is None:
        shared = set(cur.columns)
        columns = [c for c in ref.columns if c in shared]
    else:
        columns = list(columns)
        for df, name in ((ref, names[0]), (cur, names[1])):
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise DataError(f"{name}: column {missing[0]!r} not found "
                                f"(columns: {', '.join(df.columns[:20])})")
    forced = set(categorical or ())
    unknown = forced - set(columns)
    if unknown:
        raise DataError(f"categorical column {sorted(unknown)[0]!r} is not among the compared "
                        "columns")
    numeric = [c for c in columns if c not in forced and is_numeric(ref, c)]
    cats = [c for c in columns if c not in numeric]
    out: dict[str, ColumnDrift] = {}
    if numeric:
        out.update(_numeric(ref, cur, numeric, bins, names))
    if cats:
        out.update(_categorical(ref, cur, cats))
    return [out[c] for c in columns]


# --------------------------------------------------------------------------- numeric

def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col(f"`{name}`")


def _as_double(df: Any, name: str, side: str) -> Any:
    """The column as double; text that is no number is a DataError (as in pandas)."""
    from pyspark.sql import functions as F

    c = _col(name)
    if is_numeric(df, name):
        return c.cast("double")
    value = F.expr(f"try_cast(`{name}` AS double)")
    bad = df.where(c.isNotNull() & value.isNull()).select(c.cast("string")).limit(1).collect()
    if bad:
        raise DataError(f"{side}: column {name!r} is numeric in the other dataset but holds "
                        f"{str(bad[0][0])[:40]!r}")
    return value


def _finite(x: Any) -> Any:
    from pyspark.sql import functions as F

    return x.isNotNull() & ~F.isnan(x) & (F.abs(x) != F.lit(float("inf")))


def _numeric(ref: Any, cur: Any, columns: list[str], bins: int,
             names: tuple[str, str]) -> dict[str, ColumnDrift]:
    import numpy as np
    from pyspark.sql import functions as F

    sides = []
    for df, side in ((ref, names[0]), (cur, names[1])):
        values = {c: _as_double(df, c, side) for c in columns}
        aggs = [F.count(F.lit(1)).alias("__rows")]
        for i, c in enumerate(columns):
            x = values[c]
            aggs += [F.sum(F.when(x.isNull() | F.isnan(x), 1).otherwise(0)).alias(f"n{i}"),
                     F.sum(F.when(F.abs(x) == F.lit(float("inf")), 1).otherwise(0)).alias(f"i{i}"),
                     F.sum(F.when(_finite(x), 1).otherwise(0)).alias(f"f{i}"),
                     F.min(F.when(_finite(x), x)).alias(f"lo{i}"),
                     F.max(F.when(_finite(x), x)).alias(f"hi{i}")]
        sides.append((df, values, df.agg(*aggs).collect()[0]))
    (rdf, rvals, rs), (cdf, cvals, cs) = sides

    out: dict[str, ColumnDrift] = {}
    edges_of: dict[str, np.ndarray] = {}
    qaggs = []
    qs = np.arange(1, bins) / bins
    for i, c in enumerate(columns):
        d = ColumnDrift(c, NUMERIC, ref_rows=int(rs["__rows"]), cur_rows=int(cs["__rows"]),
                        ref_nulls=int(rs[f"n{i}"]), cur_nulls=int(cs[f"n{i}"]),
                        ref_nonfinite=int(rs[f"i{i}"]), cur_nonfinite=int(cs[f"i{i}"]),
                        ref_count=int(rs[f"f{i}"]), cur_count=int(cs[f"f{i}"]))
        out[c] = d
        if d.ref_count == 0 or d.cur_count == 0:
            side = "reference" if d.ref_count == 0 else "current"
            d.notes.append(f"no finite values in the {side} data; drift not computed")
            continue
        n = d.ref_count
        # pandas takes the sorted reference's value at index floor(q*n); percentile_approx
        # returns the value of rank ceil(p*n): ask for p = (floor(q*n) + 1) / n
        ranks = np.minimum(np.floor(qs * n).astype(np.int64), n - 1) + 1
        wanted = [float(r) / n for r in ranks]
        x = rvals[c]
        qaggs.append(F.percentile_approx(F.when(_finite(x), x), wanted, ACCURACY).alias(f"q{i}"))
    qrow = rdf.agg(*qaggs).collect()[0] if qaggs else None

    bin_aggs: list[list] = [[], []]
    active = [c for c in columns if out[c].ref_count and out[c].cur_count]
    for i, c in enumerate(columns):
        if c not in active:
            continue
        lo, hi = float(rs[f"lo{i}"]), float(rs[f"hi{i}"])
        inner = np.asarray(qrow[f"q{i}"], dtype=np.float64)
        edges = np.unique(np.concatenate(([lo], inner, [np.nextafter(hi, np.inf)]))) + 0.0
        edges_of[c] = edges
        for values, agg in ((rvals, bin_aggs[0]), (cvals, bin_aggs[1])):
            x = values[c]
            index = sum((F.when(x >= F.lit(float(e)), 1).otherwise(0) for e in edges), F.lit(0))
            for b in range(len(edges) + 1):
                agg.append(F.sum(F.when(_finite(x) & (index == b), 1).otherwise(0))
                           .alias(f"b{i}_{b}"))
    counts = [rdf.agg(*bin_aggs[0]).collect()[0] if bin_aggs[0] else None,
              cdf.agg(*bin_aggs[1]).collect()[0] if bin_aggs[1] else None]

    from mlcd_actions.data import drift

    # tiny samples (n*m <= EXACT_KS_MAX): scipy's exact test on the values, all such
    # columns collected in one job per side
    tiny = [c for c in active if out[c].ref_count * out[c].cur_count <= EXACT_KS_MAX]
    small: list[dict[str, np.ndarray]] = [{}, {}]
    for side, (df, values) in enumerate(((rdf, rvals), (cdf, cvals))):
        if tiny:
            keep = F.lit(False)
            for c in tiny:
                keep = keep | _finite(values[c])
            got = df.where(keep).select(*[values[c].alias(f"t{k}")
                                          for k, c in enumerate(tiny)]).collect()
            for k, c in enumerate(tiny):
                x = np.array([r[f"t{k}"] for r in got if r[f"t{k}"] is not None], dtype=np.float64)
                small[side][c] = np.sort(x[np.isfinite(x)])
    for i, c in enumerate(columns):
        if c not in active:
            continue
        d, edges = out[c], edges_of[c]
        rc = np.array([counts[0][f"b{i}_{b}"] for b in range(len(edges) + 1)], dtype=np.float64)
        cc = np.array([counts[1][f"b{i}_{b}"] for b in range(len(edges) + 1)], dtype=np.float64)
        p, q = rc / d.ref_count, cc / d.cur_count
        d.psi = drift._psi(p, q)
        if c in small[0]:
            a, b = small[0][c], small[1][c]
            d.ks = drift._ks_statistic(a, b)
            d.ks_pvalue = drift._ks_pvalue(d.ks, a, b)
        else:
            d.ks, d.ks_pvalue = _ks(rdf, rvals[c], cdf, cvals[c], d.ref_count, d.cur_count)
        d.bin_labels = drift.bin_labels(edges, float(rs[f"hi{i}"]))
        d.ref_hist, d.cur_hist = p.tolist(), q.tolist()
    return out


def _ks(rdf: Any, rx: Any, cdf: Any, cx: Any, n: int, m: int) -> tuple[float, float]:
    """The two-sample KS statistic (exact, from a distributed sort) and its p-value, as the
    pandas engine has them (past EXACT_KS_MAX the p-value needs the sizes only)."""
    import numpy as np
    import pandas as pd
    from pyspark.sql import functions as F

    from mlcd_actions.data import drift

    both = (rdf.select(rx.alias("v"), F.lit(1).alias("a"), F.lit(0).alias("b")).where(_finite(rx))
            .unionByName(cdf.select(cx.alias("v"), F.lit(0).alias("a"), F.lit(1).alias("b"))
                         .where(_finite(cx))))
    per_value = both.groupBy("v").agg(F.sum("a").cast("long").alias("a"),
                                      F.sum("b").cast("long").alias("b"))
    # range partitions in value order, each sorted: a few large ones (Python sees each
    # partition once), not spark.sql.shuffle.partitions small ones
    parts = max(1, min(KS_MAX_PARTITIONS, (n + m) // KS_ROWS_PER_PARTITION + 1))
    ordered = (per_value.repartitionByRange(parts, "v").sortWithinPartitions("v")
               .select("a", "b", F.spark_partition_id().alias("p")))

    def prefix(batches):
        sa = sb = 0
        hi = lo = None
        pid = None
        for pdf in batches:
            if pdf.empty:
                continue
            pid = int(pdf["p"].iloc[0])
            ca = pdf["a"].to_numpy(dtype=np.int64).cumsum() + sa
            cb = pdf["b"].to_numpy(dtype=np.int64).cumsum() + sb
            gap = ca * m - cb * n
            hi = int(gap.max()) if hi is None else max(hi, int(gap.max()))
            lo = int(gap.min()) if lo is None else min(lo, int(gap.min()))
            sa, sb = int(ca[-1]), int(cb[-1])
        if pid is not None:
            yield pd.DataFrame({"p": [pid], "a": [sa], "b": [sb], "hi": [hi], "lo": [lo]})

    parts = sorted(ordered.mapInPandas(prefix, "p int, a long, b long, hi long, lo long")
                   .collect(), key=lambda r: r["p"])
    best, base = 0, 0
    for r in parts:          # partitions in sort order: the gap so far shifts each one's
        best = max(best, abs(base + r["hi"]), abs(base + r["lo"]))
        base += r["a"] * m - r["b"] * n
    d = best / (n * m)
    sized = (np.broadcast_to(np.float64(0), (n,)), np.broadcast_to(np.float64(0), (m,)))
    return d, drift._ks_pvalue(d, *sized)     # beyond EXACT_KS_MAX it needs the sizes only


# --------------------------------------------------------------------------- categorical

def _categorical(ref: Any, cur: Any, columns: list[str]) -> dict[str, ColumnDrift]:
    import numpy as np

    from mlcd_actions.data import drift

    sides = [_category_counts(ref, columns), _category_counts(cur, columns)]
    out = {}
    for c in columns:
        parts = []
        for counts, nulls, rows in sides:
            values = counts.get(c, {})
            vals = np.array(list(values), dtype=str)
            cnts = np.array([values[v] for v in values], dtype=np.int64)
            order = np.argsort(vals, kind="stable")
            parts.append((vals[order], cnts[order], nulls.get(c, 0), rows))
        out[c] = drift.categorical_from_counts(c, parts[0], parts[1])
    return out


def _category_counts(df: Any, columns: list[str]) -> tuple[dict, dict, int]:
    """``({column: {value as text: count}}, {column: nulls}, rows)`` in one aggregation."""
    from pyspark.sql import functions as F

    items = []
    for i, c in enumerate(columns):
        x = _col(c)
        kind = df.schema[c].dataType.simpleString()
        if kind in ("float", "double"):
            x = F.when(~F.isnan(x), x)
            text = F.when(x == F.floor(x), x.cast("long").cast("string")).otherwise(x.cast("string"))
        else:
            text = x.cast("string")
        items.append(F.struct(F.lit(i).alias("k"), text.alias("v")))
    exploded = df.select(F.explode(F.array(*items)).alias("e")).select("e.k", "e.v")
    counts: dict[str, dict[str, int]] = {c: {} for c in columns}
    nulls: dict[str, int] = {}
    rows = 0
    for r in exploded.groupBy("k", "v").count().collect():
        c = columns[r["k"]]
        if r["v"] is None:
            nulls[c] = int(r["count"])
        else:
            counts[c][r["v"]] = int(r["count"])
    if columns:
        first = columns[0]
        rows = sum(counts[first].values()) + nulls.get(first, 0)
    return counts, nulls, rows


def prediction_classes(df: Any, column: str, max_classes: int = 20) -> bool:
    """Integer, boolean or text predictions with few distinct values are class labels
    (the pandas engine's rule, as one aggregation)."""
    from pyspark.sql import functions as F

    x = _col(column)
    kind = df.schema[column].dataType.simpleString()
    aggs = [F.approx_count_distinct(x).alias("d")]
    if kind in ("float", "double"):
        aggs.append(F.sum(F.when(x.isNotNull() & ~F.isnan(x) & (x != F.round(x)), 1)
                          .otherwise(0)).alias("frac"))
        aggs.append(F.count(F.when(~F.isnan(x), x)).alias("known"))
    r = df.agg(*aggs).collect()[0]
    if kind in ("float", "double") and (not r["known"] or r["frac"]):
        return False
    if r["d"] > 2 * max_classes:
        return False
    return df.select(x).where(x.isNotNull()).distinct().limit(max_classes + 1).count() \
        <= max_classes


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
* **KS** (the statistic) is exact, and no column is collected to the driver: one
  aggregation over both tables (the same job counts the PSI bins) counts each column's
  values on a grid of :data:`GRID_BINS` equal-width bins with each bin's min and max; the
  CDF gap is then exact at every bin's end and inside every bin holding one distinct
  value, and only the bins with several values whose bound beats the best gap are read
  back (one more job) and resolved on the driver. A column whose undecided bins hold more
  than :data:`RESOLVE_MAX` values is sorted by Spark instead (range partitioning and
  per-partition prefix sums). Its p-value is computed from the
  statistic and the two sample sizes exactly as the pandas engine computes it (exact
  for ``n·m <= 10,000``, where the two small samples are collected and scipy's exact
  test is run on them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlcd_actions.core.errors import DataError
from mlcd_actions.data.drift import EXACT_KS_MAX, NUMERIC, ColumnDrift, compared_columns

ACCURACY = 100_000
GRID_BINS = 1 << 15             # bins per column of the KS grid
GRID_SPLIT = 64                 # sub-bins per undecided bin, at each further level
GRID_LEVELS = 4                 # levels of bins before the sort fallback
RESOLVE_MAX = 500_000           # values of undecided bins read back, per column
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
    columns, forced = compared_columns(columns, categorical,
                                       ((names[0], ref.columns), (names[1], cur.columns)))
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

    from mlcd_actions.data import drift

    rvals = {c: _as_double(ref, c, names[0]) for c in columns}
    cvals = {c: _as_double(cur, c, names[1]) for c in columns}
    rs, cs = _stats(ref, rvals, columns), _stats(cur, cvals, columns)
    out: dict[str, ColumnDrift] = {}
    for i, c in enumerate(columns):
        d = ColumnDrift(c, NUMERIC, ref_rows=int(rs["__rows"]), cur_rows=int(cs["__rows"]),
                        ref_nulls=int(rs[f"n{i}"]), cur_nulls=int(cs[f"n{i}"]),
                        ref_nonfinite=int(rs[f"i{i}"]), cur_nonfinite=int(cs[f"i{i}"]),
                        ref_count=int(rs[f"f{i}"]), cur_count=int(cs[f"f{i}"]))
        out[c] = d
        if d.ref_count == 0 or d.cur_count == 0:
            side = "reference" if d.ref_count == 0 else "current"
            d.notes.append(f"no finite values in the {side} data; drift not computed")
    active = [c for c in columns if out[c].ref_count and out[c].cur_count]
    if not active:
        return out
    index = {c: columns.index(c) for c in active}
    edges_of = _edges(ref, rvals, active, index, rs, bins, {c: out[c].ref_count for c in active})
    # tiny samples (n*m <= EXACT_KS_MAX): scipy's exact test on the values
    tiny = [c for c in active if out[c].ref_count * out[c].cur_count <= EXACT_KS_MAX]
    small = [_collect_finite(ref, rvals, tiny), _collect_finite(cur, cvals, tiny)]
    grids = {c: _Grid(min(float(rs[f"lo{index[c]}"]), float(cs[f"lo{index[c]}"])),
                      max(float(rs[f"hi{index[c]}"]), float(cs[f"hi{index[c]}"])))
             for c in active}
    counts, ks = _histograms(ref, rvals, cur, cvals, active, edges_of, grids,
                             {c: (out[c].ref_count, out[c].cur_count) for c in active
                              if c not in tiny})
    for c in active:
        d, edges = out[c], edges_of[c]
        rc, cc = counts[c]
        p, q = rc / d.ref_count, cc / d.cur_count
        d.psi = drift._psi(p, q)
        if c in tiny:
            a, b = small[0][c], small[1][c]
            d.ks = drift._ks_statistic(a, b)
            d.ks_pvalue = drift._ks_pvalue(d.ks, a, b)
        else:
            d.ks = ks[c]
            sized = (np.broadcast_to(np.float64(0), (d.ref_count,)),
                     np.broadcast_to(np.float64(0), (d.cur_count,)))
            d.ks_pvalue = drift._ks_pvalue(d.ks, *sized)   # past EXACT_KS_MAX: sizes only
        d.bin_labels = drift.bin_labels(edges, float(rs[f"hi{index[c]}"]))
        d.ref_hist, d.cur_hist = p.tolist(), q.tolist()
    return out


def _stats(df: Any, values: dict[str, Any], columns: list[str]) -> Any:
    """Rows, and per column nulls/NaN, infinities, finite values, finite min and max."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, c in enumerate(columns):
        x = values[c]
        aggs += [F.sum(F.when(x.isNull() | F.isnan(x), 1).otherwise(0)).alias(f"n{i}"),
                 F.sum(F.when(F.abs(x) == F.lit(float("inf")), 1).otherwise(0)).alias(f"i{i}"),
                 F.sum(F.when(_finite(x), 1).otherwise(0)).alias(f"f{i}"),
                 F.min(F.when(_finite(x), x)).alias(f"lo{i}"),
                 F.max(F.when(_finite(x), x)).alias(f"hi{i}")]
    return df.agg(*aggs).collect()[0]


def _edges(ref: Any, values: dict[str, Any], columns: list[str], index: dict[str, int],
           stats: Any, bins: int, counts: dict[str, int]) -> dict[str, Any]:
    """PSI bin edges: the reference's finite min, its quantiles (one ``percentile_approx``
    job for every column), and just above its max."""
    import numpy as np
    from pyspark.sql import functions as F

    qs = np.arange(1, bins) / bins
    aggs = []
    for c in columns:
        n = counts[c]
        # pandas takes the sorted reference's value at index floor(q*n); percentile_approx
        # returns the value of rank ceil(p*n): ask for p = (floor(q*n) + 1) / n
        ranks = np.minimum(np.floor(qs * n).astype(np.int64), n - 1) + 1
        x = values[c]
        aggs.append(F.percentile_approx(F.when(_finite(x), x), [float(r) / n for r in ranks],
                                        ACCURACY).alias(f"q{index[c]}"))
    qrow = ref.agg(*aggs).collect()[0]
    out = {}
    for c in columns:
        i = index[c]
        lo, hi = float(stats[f"lo{i}"]), float(stats[f"hi{i}"])
        inner = np.asarray(qrow[f"q{i}"], dtype=np.float64)
        out[c] = np.unique(np.concatenate(([lo], inner, [np.nextafter(hi, np.inf)]))) + 0.0
    return out


def _collect_finite(df: Any, values: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """The finite values of a few small columns, sorted, in one job."""
    import numpy as np
    from pyspark.sql import functions as F

    if not columns:
        return {}
    keep = F.lit(False)
    for c in columns:
        keep = keep | _finite(values[c])
    got = df.where(keep).select(*[values[c].alias(f"t{k}") for k, c in enumerate(columns)]).collect()
    out = {}
    for k, c in enumerate(columns):
        x = np.array([r[f"t{k}"] for r in got if r[f"t{k}"] is not None], dtype=np.float64)
        out[c] = np.sort(x[np.isfinite(x)])
    return out


class _Grid:
    """:data:`GRID_BINS` equal-width bins over a column's finite range (both sides): the
    same Spark expression puts a value in its bin in every job, and it is monotone, so
    the bins are in value order."""

    def __init__(self, lo: float, hi: float) -> None:
        import math

        self.lo = lo
        span = hi - lo
        self.scale = GRID_BINS / span if span > 0 and math.isfinite(span) else 0.0


def _histograms(ref: Any, rvals: dict[str, Any], cur: Any, cvals: dict[str, Any],
                columns: list[str], edges_of: dict[str, Any], grids: dict[str, _Grid],
                ks_sizes: dict[str, tuple[int, int]]) -> tuple[dict, dict]:
    """PSI bin counts of both sides and the exact KS statistic of the ``ks_sizes`` columns,
    from one aggregation over both tables: finite values counted per (column, grid bin,
    PSI bin), with each grid bin's min and max. The CDF gap is then known exactly at every
    grid bin's end, and inside a bin holding one distinct value. Bins holding several
    values whose gap bound beats the best gap so far are undecided: while they hold more
    than :data:`RESOLVE_MAX` values, they are split in :data:`GRID_SPLIT` (one more
    aggregation over their rows only, up to :data:`GRID_LEVELS` levels); then their values
    are read back and the gap resolved exactly on the driver. A column still undecided
    after the last level is sorted by Spark instead (:func:`_ks`)."""
    import numpy as np
    from pyspark.sql import functions as F

    # per column constants, looked up by the column's number k after the explode (small
    # generated code: one comparison chain, not one per column)
    width = max(len(edges_of[c]) for c in columns)
    padded = [[float(e) for e in edges_of[c]] + [float("inf")] * (width - len(edges_of[c]))
              for c in columns]
    k = F.col("k")
    v = F.col("v")

    def per_column(values: list[float]) -> Any:
        return F.element_at(F.array(*[F.lit(float(x)) for x in values]), k + 1)

    psi = sum((F.when(v >= per_column([e[j] for e in padded]), 1).otherwise(0)
               for j in range(width)), F.lit(0))
    lo = per_column([grids[c].lo if c in ks_sizes else 0.0 for c in columns])
    scale = per_column([grids[c].scale if c in ks_sizes else 0.0 for c in columns])

    def key(level: int) -> Any:
        """The bin at ``level`` (1: the grid): scaling by a power of two is exact in
        floating point, so a bin's sub-bins are exactly the values of that bin."""
        bins = GRID_BINS * GRID_SPLIT ** (level - 1)
        raw = F.floor((v - lo) * scale * F.lit(float(GRID_SPLIT ** (level - 1))))
        return F.least(F.greatest(raw, F.lit(0)), F.lit(bins - 1)).cast("long")

    def side(df: Any, values: dict[str, Any], flag: int) -> Any:
        items = [F.struct(F.lit(i).alias("k"), values[c].alias("v")) for i, c in enumerate(columns)]
        return (df.select(F.explode(F.array(*items)).alias("e")).select("e.k", "e.v")
                .where(_finite(v)).select(k, key(1).alias("g"), psi.alias("p"), v,
                                          F.lit(flag).alias("s")))

    both = side(ref, rvals, 0).unionByName(side(cur, cvals, 1))
    hist = (both.groupBy("k", "g", "p")
            .agg(F.sum(1 - F.col("s")).cast("long").alias("a"),
                 F.sum("s").cast("long").alias("b"),
                 F.min("v").alias("lo"), F.max("v").alias("hi")).toPandas())
    counts, ks, chosen = {}, {}, {}
    for i, c in enumerate(columns):
        part = hist[hist["k"] == i]
        psi_counts = part.groupby("p")[["a", "b"]].sum()
        size = len(edges_of[c]) + 1
        counts[c] = tuple(psi_counts[x].reindex(range(size), fill_value=0)
                          .to_numpy(dtype=np.float64) for x in ("a", "b"))
        if c in ks_sizes:
            grid = part.groupby("g").agg(a=("a", "sum"), b=("b", "sum"), lo=("lo", "min"),
                                         hi=("hi", "max")).sort_index()
            grid["parent"], grid["pa0"], grid["pb0"] = 0, 0, 0
            ks[c], chosen[c] = _grid_gap(grid, *ks_sizes[c], 0)
    level_of = dict.fromkeys(chosen, 1)
    for level in range(2, GRID_LEVELS + 1):
        split = {c: g for c, g in chosen.items() if _held(g) > RESOLVE_MAX}
        if not split:
            break
        chosen.update(_refine(both, columns, split, ks, ks_sizes, key(level - 1), key(level)))
        level_of.update(dict.fromkeys(split, level))
    big = [c for c, g in chosen.items() if _held(g) > RESOLVE_MAX]
    sorted_ks = {c: _ks(ref, rvals[c], cur, cvals[c], *ks_sizes[c])[0] for c in big}
    for level in sorted(set(level_of.values())):
        at = {c: g for c, g in chosen.items()
              if len(g) and c not in sorted_ks and level_of[c] == level}
        if at:
            _resolve(both, columns, at, ks, ks_sizes, key(level))
    return counts, {c: sorted_ks[c] if c in sorted_ks else ks[c] / (n * m)
                    for c, (n, m) in ks_sizes.items()}


def _held(undecided: Any) -> int:
    return int(undecided["a"].sum() + undecided["b"].sum())


def _grid_gap(grid: Any, n: int, m: int, best: int) -> tuple[int, Any]:
    """``grid``: bins in value order with their counts (``a``, ``b``), min and max, and
    the counts before their ``parent`` bin (``pa0``, ``pb0``). Returns the largest
    |m*#a - n*#b| known at bin ends (and ``best``), and the bins still undecided, with
    the counts before each (``a0``, ``b0``)."""
    import numpy as np

    a = grid["a"].to_numpy(dtype=np.int64)
    b = grid["b"].to_numpy(dtype=np.int64)
    a1 = grid.groupby("parent")["a"].cumsum().to_numpy(dtype=np.int64) + grid["pa0"].to_numpy()
    b1 = grid.groupby("parent")["b"].cumsum().to_numpy(dtype=np.int64) + grid["pb0"].to_numpy()
    a0, b0 = a1 - a, b1 - b
    if a.size:
        best = max(best, int(np.abs(m * a1 - n * b1).max()))
    bound = np.maximum(np.abs(m * a0 - n * b1), np.abs(m * a1 - n * b0))
    several = grid["lo"].to_numpy() != grid["hi"].to_numpy()
    return best, grid.assign(a0=a0, b0=b0)[several & (bound > best)]


def _refine(both: Any, columns: list[str], split: dict[str, Any], ks: dict[str, int],
            ks_sizes: dict[str, tuple[int, int]], parent: Any, child: Any) -> dict[str, Any]:
    """Split the undecided bins of ``split`` (one aggregation over their rows only)."""
    import numpy as np
    from pyspark.sql import functions as F

    keys = [(columns.index(c), int(g)) for c, frame in split.items() for g in frame.index]
    wanted = both.sparkSession.createDataFrame(keys, "k int, parent long")
    sub = (both.select("k", parent.alias("parent"), child.alias("key"), "v", "s")
           .join(F.broadcast(wanted), ["k", "parent"], "left_semi")
           .groupBy("k", "parent", "key")
           .agg(F.sum(1 - F.col("s")).cast("long").alias("a"), F.sum("s").cast("long").alias("b"),
                F.min("v").alias("lo"), F.max("v").alias("hi")).toPandas())
    out = {}
    for c, frame in split.items():
        part = sub[sub["k"] == columns.index(c)].sort_values("key").set_index("key")
        before = frame.loc[part["parent"].to_numpy()]
        part = part.assign(pa0=before["a0"].to_numpy(dtype=np.int64),
                           pb0=before["b0"].to_numpy(dtype=np.int64))
        ks[c], out[c] = _grid_gap(part, *ks_sizes[c], ks[c])
    return out


def _resolve(both: Any, columns: list[str], chosen: dict[str, Any], ks: dict[str, int],
             ks_sizes: dict[str, tuple[int, int]], key: Any) -> None:
    """Read the values of the undecided bins (one job) and take the exact gap inside each."""
    import numpy as np
    from pyspark.sql import functions as F

    keys = [(columns.index(c), int(g)) for c, frame in chosen.items() for g in frame.index]
    wanted = both.sparkSession.createDataFrame(keys, "k int, key long")
    values = (both.select("k", key.alias("key"), "v", "s")
              .join(F.broadcast(wanted), ["k", "key"], "left_semi").toPandas())
    for (k, g), part in values.groupby(["k", "key"]):
        c = columns[int(k)]
        n, m = ks_sizes[c]
        row = chosen[c].loc[int(g)]
        v, s = part["v"].to_numpy(dtype=np.float64), part["s"].to_numpy()
        a_in, b_in = np.sort(v[s == 0]), np.sort(v[s == 1])
        points = np.unique(v)
        ca = int(row["a0"]) + np.searchsorted(a_in, points, "right")
        cb = int(row["b0"]) + np.searchsorted(b_in, points, "right")
        ks[c] = max(ks[c], int(np.abs(m * ca - n * cb).max()))


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


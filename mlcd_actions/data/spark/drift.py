"""Drift statistics from Spark aggregations: the same :class:`~mlcd_actions.data.drift.ColumnDrift`
as :func:`mlcd_actions.data.drift.compare`, computed where the data is.

Everything is exact: the same numbers as the pandas engine.

* **counts** (rows, nulls and NaN, infinities, category counts, new and missing
  categories) come from aggregations, and so do chi-square, its p-value, Jensen–Shannon
  and L-infinity, which only need the category counts;
* **numeric columns** need no sort and no ``percentile_approx``: after one aggregation
  over both tables for each side's counts, min and max (the two scans side by side, as
  in every job here), one more counts each column's finite values on a grid of
  :data:`GRID_BINS` equal-width bins, with each bin's min and max (:func:`_histograms`).
  From it come, exactly:

  - the **KS statistic**: the CDF gap is exact at every bin's end and inside every bin
    holding one distinct value; only the bins with several values whose bound beats the
    best gap are read back (their distinct values counted, one more job) and resolved on
    the driver. A column whose undecided bins hold more than :data:`RESOLVE_MAX` values is
    split first (:data:`GRID_SPLIT` sub-bins, up to :data:`GRID_LEVELS` levels) and, if
    still undecided, sorted by Spark (range partitioning and per-partition prefix sums);
  - the **PSI bin edges and counts**: the edges are the reference's order statistics the
    pandas engine takes (its min, its sorted value at ``floor(q·n)``, just above its
    max). An order statistic in a bin of one distinct value is that value, with the counts
    below it known from the bins; one in a bin of several values is read back in the same
    job as the KS bins (split first like them while it holds more than
    :data:`RESOLVE_MAX` values; after the last level it is read back anyway, as distinct
    values with their counts);
  - the KS **p-value**, from the statistic and the two sample sizes exactly as the
    pandas engine computes it (exact for ``n·m <= 10,000``, where the two small samples
    are collected and scipy's exact test and the pandas engine's PSI code run on them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlcd_actions.core.errors import DataError
from mlcd_actions.data.drift import EXACT_KS_MAX, NUMERIC, ColumnDrift, compared_columns

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
    rs, cs = _stats(ref, rvals, cur, cvals, columns)
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
    qs = np.arange(1, bins) / bins
    # tiny samples (n*m <= EXACT_KS_MAX): their values, for scipy's exact test
    tiny = [c for c in active if out[c].ref_count * out[c].cur_count <= EXACT_KS_MAX]
    small = [_collect_finite(ref, rvals, tiny), _collect_finite(cur, cvals, tiny)]
    large = [c for c in active if c not in tiny]
    sizes = {c: (out[c].ref_count, out[c].cur_count) for c in large}
    # the reference's order statistics PSI needs: its min, quantiles (pandas' sorted
    # value at floor(q*n)) and max
    kth = {c: np.minimum((qs * n).astype(np.int64), n - 1) for c, (n, _) in sizes.items()}
    ranks = {c: np.unique(np.concatenate(([0], kth[c], [sizes[c][0] - 1]))) for c in large}
    grids = {}
    for c in large:
        i = columns.index(c)
        grids[c] = _Grid(min(float(rs[f"lo{i}"]), float(cs[f"lo{i}"])),
                         max(float(rs[f"hi{i}"]), float(cs[f"hi{i}"])))
    ks, facts = _histograms(ref, rvals, cur, cvals, large, grids, sizes, ranks) \
        if large else ({}, {})
    for c in active:
        d = out[c]
        if c in tiny:
            a, b = small[0][c], small[1][c]
            k = np.minimum((qs * a.size).astype(np.int64), a.size - 1)
            highest = a[-1]
            edges = np.unique(np.concatenate(([a[0]], a[k], [np.nextafter(highest, np.inf)])))
            edges = edges + 0.0
            ref_below = np.searchsorted(a, edges, "left")
            cur_below = np.searchsorted(b, edges, "left")
            d.ks = drift._ks_statistic(a, b)
            d.ks_pvalue = drift._ks_pvalue(d.ks, a, b)
        else:
            n, m = sizes[c]
            at = facts[c]                        # rank -> (value, below a, b, upto a, b)
            highest = at[n - 1][0]
            top = np.nextafter(highest, np.inf)
            edges = np.unique(np.concatenate(([at[0][0]], [at[int(r)][0] for r in kth[c]],
                                              [top]))) + 0.0
            below = {at[int(r)][0] + 0.0: at[int(r)][1:3] for r in ranks[c]}
            below[float(top)] = at[n - 1][3:5]   # values <= the reference's max
            ref_below = np.array([below[float(e)][0] for e in edges], dtype=np.int64)
            cur_below = np.array([below[float(e)][1] for e in edges], dtype=np.int64)
            d.ks = ks[c]
            sized = (np.broadcast_to(np.float64(0), (n,)), np.broadcast_to(np.float64(0), (m,)))
            d.ks_pvalue = drift._ks_pvalue(d.ks, *sized)   # past EXACT_KS_MAX: sizes only
        rc = np.diff(np.concatenate(([0], ref_below, [d.ref_count])))
        cc = np.diff(np.concatenate(([0], cur_below, [d.cur_count])))
        p, q = rc / d.ref_count, cc / d.cur_count
        d.psi = drift._psi(p, q)
        d.bin_labels = drift.bin_labels(edges, float(highest))
        d.ref_hist, d.cur_hist = p.tolist(), q.tolist()
    return out


def _stats(ref: Any, rvals: dict[str, Any], cur: Any, cvals: dict[str, Any],
           columns: list[str]) -> tuple[dict, dict]:
    """Per side: rows, and per column nulls/NaN, infinities, finite values, finite min and
    max (one job over both tables, so their scans run side by side)."""
    from pyspark.sql import functions as F

    def side(df: Any, values: dict[str, Any], flag: int) -> Any:
        return df.select(F.lit(flag).alias("__s"),
                         *[values[c].alias(f"x{i}") for i, c in enumerate(columns)])

    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i in range(len(columns)):
        x = F.col(f"x{i}")
        aggs += [F.sum(F.when(x.isNull() | F.isnan(x), 1).otherwise(0)).alias(f"n{i}"),
                 F.sum(F.when(F.abs(x) == F.lit(float("inf")), 1).otherwise(0)).alias(f"i{i}"),
                 F.sum(F.when(_finite(x), 1).otherwise(0)).alias(f"f{i}"),
                 F.min(F.when(_finite(x), x)).alias(f"lo{i}"),
                 F.max(F.when(_finite(x), x)).alias(f"hi{i}")]
    got = {r["__s"]: r.asDict() for r in side(ref, rvals, 0).unionByName(side(cur, cvals, 1))
           .groupBy("__s").agg(*aggs).collect()}
    empty = {"__rows": 0, **{f"{k}{i}": 0 for i in range(len(columns)) for k in "nif"}}
    return got.get(0, empty), got.get(1, empty)


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
    """:data:`GRID_BINS` equal-width bins over a column's finite range (both sides), and
    at each further level :data:`GRID_SPLIT` sub-bins per bin: the same Spark expression
    puts a value in its bin in every job, and it is monotone, so the bins are in value
    order and equal values share a bin."""

    def __init__(self, lo: float, hi: float) -> None:
        import math

        self.lo = lo
        span = hi - lo
        self.scale = GRID_BINS / span if span > 0 and math.isfinite(span) else 0.0

    def key(self, v: Any, level: int) -> Any:
        """The bin of ``v`` at ``level`` (1: the grid). Scaling by a power of two is exact
        in floating point, so the bin at ``level - 1`` is this key shifted right by
        log2(GRID_SPLIT) bits: a bin's sub-bins hold exactly that bin's values."""
        from pyspark.sql import functions as F

        bins = GRID_BINS * GRID_SPLIT ** (level - 1)
        raw = F.floor((v - F.lit(self.lo)) * F.lit(self.scale)
                      * F.lit(float(GRID_SPLIT ** (level - 1))))
        return F.least(F.greatest(raw, F.lit(0)), F.lit(bins - 1)).cast("long")


_SPLIT_BITS = GRID_SPLIT.bit_length() - 1


def _histograms(ref: Any, rvals: dict[str, Any], cur: Any, cvals: dict[str, Any],
                columns: list[str], grids: dict[str, _Grid], sizes: dict[str, tuple[int, int]],
                ranks: dict[str, Any]) -> tuple[dict[str, float], dict[str, dict]]:
    """The exact KS statistic of each column and, for each of its reference ``ranks``
    (0-based, in sorted order), ``(value, reference and current values below it, at or
    below it)``: PSI's bin edges and bin counts, exact.

    One aggregation over both tables counts each column's finite values per grid bin,
    with each bin's min and max. The CDF gap is then known exactly at every bin's end and
    inside a bin holding one distinct value, and so is a rank that falls in such a bin.
    Bins holding several values that could hold a larger gap, or a rank, are undecided:
    while they hold more than :data:`RESOLVE_MAX` values, they are split in
    :data:`GRID_SPLIT` (one more aggregation over their rows only, up to
    :data:`GRID_LEVELS` levels); then their distinct values are counted (one job) and the
    gap and ranks resolved on the driver. A column whose gap is still undecided after the
    last level is sorted by Spark instead (:func:`_ks`)."""
    from pyspark.sql import functions as F

    def exploded(level: int, wanted: dict[str, Any] | None = None, shift: int = 0) -> Any:
        """``(k, key, v, s)``: every finite value of both sides with its column number,
        its bin at ``level`` and its side; with ``wanted``, only the values whose bin
        shifted right by ``shift`` bits (0: the bin, :data:`_SPLIT_BITS`: its parent) is
        one of their column's ``wanted`` bins (a cheap filter before the explode)."""
        def side(df: Any, values: dict[str, Any], flag: int) -> Any:
            # each value and its bin in a projection (where Spark computes a shared
            # subexpression once), then one row per column
            mine = [i for i, c in enumerate(columns) if wanted is None or c in wanted]
            proj, keep = [], F.lit(False)
            for i in mine:
                c = columns[i]
                x = values[c]
                v = F.when(_finite(x), x)
                key = grids[c].key(v, level)
                if wanted is not None:
                    inside = F.shiftright(key, shift).isin([int(g) for g in wanted[c]])
                    v, key = F.when(inside, v), F.when(inside, key)
                    keep = keep | inside
                proj += [v.alias(f"v{i}"), key.alias(f"g{i}")]
            rows = df.select(*proj) if wanted is None else \
                df.select(*proj, keep.alias("__keep")).where("__keep")
            items = [F.struct(F.lit(i).alias("k"), F.col(f"g{i}").alias("key"),
                              F.col(f"v{i}").alias("v")) for i in mine]
            return (rows.select(F.explode(F.array(*items)).alias("e"))
                    .select("e.k", "e.key", "e.v").where(F.col("v").isNotNull())
                    .withColumn("s", F.lit(flag)))

        return side(ref, rvals, 0).unionByName(side(cur, cvals, 1))

    def counted(frame: Any, *keys: str) -> Any:
        return (frame.groupBy(*keys)
                .agg(F.sum(1 - F.col("s")).cast("long").alias("a"),
                     F.sum("s").cast("long").alias("b"),
                     F.min("v").alias("lo"), F.max("v").alias("hi")).toPandas())

    hist = counted(exploded(1), "k", "key")
    ks: dict[str, int] = {}
    facts: dict[str, dict] = {c: {} for c in columns}
    chosen: dict[str, Any] = {}
    for i, c in enumerate(columns):
        grid = hist[hist["k"] == i].set_index("key").sort_index()
        grid = grid.assign(parent=0, pa0=0, pb0=0)
        ks[c], chosen[c] = _grid_gap(grid, *sizes[c], 0, ranks[c], facts[c])
    level_of = dict.fromkeys(columns, 1)
    for level in range(2, GRID_LEVELS + 1):
        split = {c: g for c, g in chosen.items() if _held(g) > RESOLVE_MAX}
        if not split:
            break
        rows = exploded(level, {c: g.index for c, g in split.items()}, _SPLIT_BITS)
        chosen.update(_refine(counted(rows.withColumn("parent", F.shiftright("key", _SPLIT_BITS)),
                                      "k", "parent", "key"),
                              columns, split, ks, sizes, ranks, facts))
        level_of.update(dict.fromkeys(split, level))
    big = [c for c, g in chosen.items() if _held(g[g["gap"]]) > RESOLVE_MAX]
    sorted_ks = {c: _ks(ref, rvals[c], cur, cvals[c], *sizes[c])[0] for c in big}
    for c in big:                 # only their ranks are left to read back
        chosen[c] = chosen[c][chosen[c]["rank"]]
    for level in sorted(set(level_of.values())):
        at = {c: g for c, g in chosen.items() if len(g) and level_of[c] == level}
        if at:
            _resolve(exploded(level, {c: g.index for c, g in at.items()}), columns, at, ks,
                     sizes, ranks, facts)
    return ({c: sorted_ks[c] if c in sorted_ks else ks[c] / (n * m)
             for c, (n, m) in sizes.items()}, facts)


def _held(undecided: Any) -> int:
    return int(undecided["a"].sum() + undecided["b"].sum())


def _grid_gap(grid: Any, n: int, m: int, best: int, ranks: Any,
              facts: dict) -> tuple[int, Any]:
    """``grid``: bins in value order with their counts (``a``, ``b``), min and max, and
    the counts before their ``parent`` bin (``pa0``, ``pb0``). Returns the largest
    |m*#a - n*#b| known at bin ends (and ``best``), and the bins still undecided, with
    the counts before each (``a0``, ``b0``) and why: ``gap`` (could hold a larger gap),
    ``rank`` (holds one of ``ranks`` not yet in ``facts``). A rank in a bin of one distinct
    value goes into ``facts`` here."""
    import numpy as np

    a = grid["a"].to_numpy(dtype=np.int64)
    b = grid["b"].to_numpy(dtype=np.int64)
    a1 = grid.groupby("parent")["a"].cumsum().to_numpy(dtype=np.int64) + grid["pa0"].to_numpy()
    b1 = grid.groupby("parent")["b"].cumsum().to_numpy(dtype=np.int64) + grid["pb0"].to_numpy()
    a0, b0 = a1 - a, b1 - b
    if a.size:
        best = max(best, int(np.abs(m * a1 - n * b1).max()))
    bound = np.maximum(np.abs(m * a0 - n * b1), np.abs(m * a1 - n * b0))
    lo, hi = grid["lo"].to_numpy(), grid["hi"].to_numpy()
    several = lo != hi
    # the bin of each pending rank r: a0 <= r < a1 (bins in value order, a1 rising)
    pending = np.array([r for r in ranks if int(r) not in facts], dtype=np.int64)
    holds = np.zeros(a.size, dtype=bool)
    if pending.size and a.size:
        where = np.searchsorted(a1, pending, "right")
        ok = where < a.size
        where, pending = where[ok], pending[ok]
        inside = a0[where] <= pending
        where, pending = where[inside], pending[inside]
        for r, w in zip(pending.tolist(), where.tolist(), strict=True):
            if not several[w]:
                facts[r] = (float(lo[w]), int(a0[w]), int(b0[w]), int(a1[w]), int(b1[w]))
        holds[where[several[where]]] = True
    gap = several & (bound > best)
    return best, grid.assign(a0=a0, b0=b0, gap=gap, rank=holds)[gap | holds]


def _refine(sub: Any, columns: list[str], split: dict[str, Any], ks: dict[str, int],
            sizes: dict[str, tuple[int, int]], ranks: dict[str, Any],
            facts: dict[str, dict]) -> dict[str, Any]:
    """The undecided bins of the ``split`` columns at the next level, from ``sub`` (their
    sub-bins' counts, min and max)."""
    import numpy as np

    out = {}
    for c, frame in split.items():
        part = sub[sub["k"] == columns.index(c)].set_index("key").sort_index()
        before = frame.loc[part["parent"].to_numpy()]
        part = part.assign(pa0=before["a0"].to_numpy(dtype=np.int64),
                           pb0=before["b0"].to_numpy(dtype=np.int64))
        ks[c], out[c] = _grid_gap(part, *sizes[c], ks[c], ranks[c], facts[c])
    return out


def _resolve(both: Any, columns: list[str], chosen: dict[str, Any], ks: dict[str, int],
             sizes: dict[str, tuple[int, int]], ranks: dict[str, Any],
             facts: dict[str, dict]) -> None:
    """Count the distinct values of the undecided bins (``both``: their values only; one
    job) and take the exact gap and the pending ranks inside each."""
    import numpy as np
    from pyspark.sql import functions as F

    values = (both.groupBy("k", "key", "v")
              .agg(F.sum(1 - F.col("s")).cast("long").alias("a"),
                   F.sum("s").cast("long").alias("b")).toPandas())
    for (k, g), part in values.groupby(["k", "key"]):
        c = columns[int(k)]
        n, m = sizes[c]
        row = chosen[c].loc[int(g)]
        part = part.sort_values("v")
        v = part["v"].to_numpy(dtype=np.float64)
        ca = int(row["a0"]) + part["a"].to_numpy(dtype=np.int64).cumsum()
        cb = int(row["b0"]) + part["b"].to_numpy(dtype=np.int64).cumsum()
        if row["gap"]:
            ks[c] = max(ks[c], int(np.abs(m * ca - n * cb).max()))
        if row["rank"]:
            a_in, b_in = part["a"].to_numpy(dtype=np.int64), part["b"].to_numpy(dtype=np.int64)
            for r in ranks[c]:
                r = int(r)
                if r in facts[c] or not int(row["a0"]) <= r < ca[-1]:
                    continue
                j = int(np.searchsorted(ca, r, "right"))
                facts[c][r] = (float(v[j]), int(ca[j] - a_in[j]), int(cb[j] - b_in[j]),
                               int(ca[j]), int(cb[j]))


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

    sides = _category_counts(ref, cur, columns)
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


def _category_counts(ref: Any, cur: Any, columns: list[str]) -> list[tuple[dict, dict, int]]:
    """Per side ``({column: {value as text: count}}, {column: nulls}, rows)``, in one
    aggregation over both tables."""
    from pyspark.sql import functions as F

    def side(df: Any, flag: int) -> Any:
        items = []
        for i, c in enumerate(columns):
            x = _col(c)
            kind = df.schema[c].dataType.simpleString()
            if kind in ("float", "double"):
                x = F.when(~F.isnan(x), x)
                text = F.when(x == F.floor(x), x.cast("long").cast("string")) \
                        .otherwise(x.cast("string"))
            else:
                text = x.cast("string")
            items.append(F.struct(F.lit(i).alias("k"), text.alias("v")))
        return (df.select(F.explode(F.array(*items)).alias("e")).select("e.k", "e.v")
                .withColumn("s", F.lit(flag)))

    out: list[tuple[dict, dict, int]] = [({c: {} for c in columns}, {}, 0) for _ in range(2)]
    for r in side(ref, 0).unionByName(side(cur, 1)).groupBy("s", "k", "v").count().collect():
        counts, nulls, _ = out[r["s"]]
        c = columns[r["k"]]
        if r["v"] is None:
            nulls[c] = int(r["count"])
        else:
            counts[c][r["v"]] = int(r["count"])
    if not columns:
        return out
    first = columns[0]
    return [(counts, nulls, sum(counts[first].values()) + nulls.get(first, 0))
            for counts, nulls, _ in out]


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


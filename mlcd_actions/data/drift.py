"""Per-column drift between a reference and a current dataset.

:func:`compare` returns one :class:`ColumnDrift` per column:

* **numeric** columns: the Population Stability Index over quantile bins of the
  reference (``bins`` quantile bins plus one open bin below the reference minimum and
  one above its maximum, so values outside the reference range count), and the
  two-sample Kolmogorov–Smirnov statistic with its p-value (exact for small samples,
  scipy's ``kstwo`` for medium ones, the limiting Kolmogorov distribution for large ones);
* **categorical** columns (strings, booleans, pandas categories, and any column named in
  ``categorical``): the chi-square test of homogeneity on the 2 × k table of category
  counts (categories expected fewer than ``CHI2_MIN_EXPECTED`` times pooled), the
  Jensen–Shannon distance (base 2, so it lies in [0, 1]) and the
  L-infinity distance between the category frequencies, plus the categories that are
  new in the current data and those missing from it.

Nulls, NaN and infinities are handled explicitly, never silently dropped:

* nulls (``None``, ``NaN``, ``pd.NA``, ``NaT``) are left out of every distribution
  statistic and reported as ``ref_nulls``/``cur_nulls`` and the metric
  ``null_fraction`` (current) and ``null_fraction_delta`` (current minus reference), which
  a threshold can gate (``'null_fraction_delta<=0.05'``);
* ``+inf``/``-inf`` in a numeric column are left out of PSI and KS and reported as
  ``ref_nonfinite``/``cur_nonfinite`` (metric ``nonfinite_fraction``);
* a column with no non-null values on either side gets ``None`` for its statistics
  (and a gate on it is *skipped*, which the report shows) plus a note in ``notes``.

PSI uses proportions floored at ``PSI_EPSILON`` (1e-4) so an empty bin contributes a
large but finite term; that is the usual convention (Evidently uses the same floor).

Speed and memory: no column is sorted whole. Both sides of a numeric column go into one
fine equal-width histogram (:class:`_Grid`, 65,536 bins); the reference quantiles, the
PSI bin counts and the exact KS statistic come from the bin counts plus the values of the
few bins that can change them, sorted there (small inputs, and columns the histogram does
not separate, are sorted instead; both ways give the same numbers). Categorical counts
come from the Parquet dictionary pages (indices counted per dictionary) or pyarrow's
``value_counts``. Columns are processed in a small thread pool (numpy and pyarrow release
the GIL) that reuses its arrays from column to column, and a Parquet path is read one
column at a time (row group by row group), so memory stays near
``rows × 8 bytes × (2 sides + 3 work arrays) × (threads)`` rather than the whole table.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import DataError, first_line

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

NUMERIC = "numeric"
CATEGORICAL = "categorical"
PSI_EPSILON = 1e-4
EXACT_KS_MAX = 10_000          # n * m up to which the KS p-value is exact
ASYMP_KSTWO_MAX = 20_000       # effective size n*m/(n+m) up to which scipy's kstwo is used
GRID_BINS = 1 << 16            # fine histogram bins of the sort-free numeric path
GRID_MIN_VALUES = 4096         # below this many values (both sides) sorting is as fast
MAX_LISTED_CATEGORIES = 50     # new/missing category names kept (counts are always complete)
HIST_TOP_CATEGORIES = 20       # categories kept for plots
CHI2_MIN_EXPECTED = 5          # categories expected fewer times are pooled for chi-square

# metric names per kind, in report order
NUMERIC_METRICS = ("psi", "ks", "ks_pvalue")
CATEGORICAL_METRICS = ("chi2", "chi2_pvalue", "js", "linf", "new_categories",
                       "missing_categories")
COMMON_METRICS = ("null_fraction", "null_fraction_delta", "nonfinite_fraction")
ALL_METRICS = frozenset(NUMERIC_METRICS + CATEGORICAL_METRICS + COMMON_METRICS)


@dataclass
class ColumnDrift:
    """Drift statistics of one column. Statistics that do not apply to ``kind`` are None."""

    column: str
    kind: str
    psi: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    js: float | None = None
    linf: float | None = None
    new_categories: list[str] = field(default_factory=list)
    missing_categories: list[str] = field(default_factory=list)
    new_category_count: int = 0
    missing_category_count: int = 0
    ref_count: int = 0        # non-null, finite values used for the statistics
    cur_count: int = 0
    ref_nulls: int = 0
    cur_nulls: int = 0
    ref_nonfinite: int = 0    # +-inf (numeric only)
    cur_nonfinite: int = 0
    ref_rows: int = 0
    cur_rows: int = 0
    # histogram for plots: bin labels and proportions (numeric: the PSI bins)
    bin_labels: list[str] = field(default_factory=list)
    ref_hist: list[float] = field(default_factory=list)
    cur_hist: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def null_fraction(self) -> float | None:
        return self.cur_nulls / self.cur_rows if self.cur_rows else None

    @property
    def null_fraction_delta(self) -> float | None:
        if not self.cur_rows or not self.ref_rows:
            return None
        return self.cur_nulls / self.cur_rows - self.ref_nulls / self.ref_rows

    @property
    def nonfinite_fraction(self) -> float | None:
        return self.cur_nonfinite / self.cur_rows if self.cur_rows else None

    def metrics(self) -> dict[str, float]:
        """The statistics that apply to this column's kind (None when not computable);
        new/missing categories as counts."""
        out: dict[str, Any] = {}
        if self.kind == NUMERIC:
            out.update(psi=self.psi, ks=self.ks, ks_pvalue=self.ks_pvalue,
                       nonfinite_fraction=self.nonfinite_fraction)
        else:
            out.update(chi2=self.chi2, chi2_pvalue=self.chi2_pvalue, js=self.js,
                       linf=self.linf, new_categories=float(self.new_category_count),
                       missing_categories=float(self.missing_category_count))
        out.update(null_fraction=self.null_fraction, null_fraction_delta=self.null_fraction_delta)
        return out

    def score(self) -> float:
        """One number to rank columns by: PSI for numeric, JS for categorical."""
        value = self.psi if self.kind == NUMERIC else self.js
        return -1.0 if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- inputs

class _Frame:
    """Column access over a DataFrame or a table file, one column at a time."""

    def __init__(self, data: Any, role: str) -> None:
        self.role = role
        self._lock = threading.Lock()  # a ParquetFile must not be read from two threads at once
        self.path: str | None = None
        self._pq = None
        self._pq_text = None  # the same file, text columns read as dictionaries
        self._df = None
        if isinstance(data, (str, os.PathLike)):
            self.path = os.fspath(data)
            from mlcd_actions.data import tables as tabular

            files = tabular.table_files(data)
            if len(files) == 1 and tabular.kind_of(files[0]) == "parquet":
                import pyarrow.parquet as pq

                try:
                    self._pq = pq.ParquetFile(files[0])
                    self._pq_path = files[0]
                except Exception as exc:  # pyarrow's zoo of errors
                    raise DataError(f"{files[0]}: cannot read as parquet: "
                                    f"{first_line(exc)}") from exc
            else:
                self._df = tabular.read_table(data, what=role)
        else:
            self._df = data
        if self._pq is not None:
            self.columns = list(self._pq.schema_arrow.names)
            self.rows = int(self._pq.metadata.num_rows)
        else:
            self.columns = [str(c) for c in self._df.columns]
            self.rows = len(self._df)

    @property
    def name(self) -> str:
        return self.path or self.role

    def is_numeric(self, column: str) -> bool:
        import pyarrow as pa

        if self._pq is not None:
            t = self._pq.schema_arrow.field(column).type
            if pa.types.is_dictionary(t):
                return False
            return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        import pandas as pd

        dtype = self._df[column].dtype
        return bool(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))

    def _text_reader(self):
        """The Parquet file opened to read text columns as dictionary arrays: the file's own
        dictionary pages, not a decoded string per row (caller holds the lock)."""
        if self._pq_text is None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            text = [f.name for f in self._pq.schema_arrow
                    if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            try:
                self._pq_text = pq.ParquetFile(self._pq_path, read_dictionary=text)
            except Exception:  # noqa: BLE001 - read the strings as they are
                self._pq_text = self._pq
        return self._pq_text

    def arrow(self, column: str):
        """The column as pyarrow data: one array, or the row groups' dictionary arrays of a
        Parquet text column (counted per dictionary by :func:`_value_counts`)."""
        import pyarrow as pa

        if self._pq is not None:
            with self._lock:
                source = self._pq
                kind = self._pq.schema_arrow.field(column).type
                if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                    source = self._text_reader()
                chunks = [source.read_row_group(i, columns=[column], use_threads=False).column(0)
                          for i in range(source.num_row_groups)]
            if not chunks:
                return pa.array([], type=self._pq.schema_arrow.field(column).type)
            parts = [c for ch in chunks for c in ch.chunks]
            if parts and all(_is_text_dictionary(c.type) for c in parts):
                return pa.chunked_array(parts)
            if pa.types.is_dictionary(chunks[0].type):  # row groups may differ in dictionary
                parts = [c.cast(c.type.value_type) for c in parts]
            if not parts:
                return pa.array([], type=chunks[0].type)
            return pa.concat_arrays(parts)
        series = self._df[column]
        try:
            return pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(series.astype(object).map(_text_or_none), from_pandas=True)

    def float64(self, column: str, scratch: _Scratch | None = None) -> np.ndarray:
        """The column as float64 with nulls as NaN, read row group by row group for Parquet
        (into ``scratch``'s buffer for this side when given). The caller owns the array."""
        import numpy as np

        if self._pq is not None:
            out = (np.empty(self.rows, dtype=np.float64) if scratch is None
                   else scratch.get(self.role, self.rows, np.float64))
            pos = 0
            for i in range(self._pq.num_row_groups):  # one row group of one column at a time
                with self._lock:
                    table = self._pq.read_row_group(i, columns=[column], use_threads=False)
                arr = table.column(0).combine_chunks()
                plain = _primitive(arr)
                if plain is not None:
                    values, valid = plain
                    out[pos:pos + len(values)] = values
                    if valid is not None:
                        out[pos:pos + len(values)][~valid] = np.nan
                    pos += len(values)
                    continue
                chunk = arr.to_numpy(zero_copy_only=False)
                if arr.null_count:
                    chunk = chunk.astype(np.float64, copy=True)
                    chunk[np.asarray(arr.is_null())] = np.nan
                out[pos:pos + len(chunk)] = chunk
                pos += len(chunk)
            return out[:pos]
        import pandas as pd

        series = self._df[column]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
                series.dtype):
            return series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)  # sorted in place
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{self.name}: column {column!r} is numeric in the other dataset "
                            f"but holds {str(series.iloc[row])[:40]!r} at row {row}")
        return converted.to_numpy(dtype=np.float64, na_value=np.nan)


# pyarrow's fixed-width number types read straight from their buffers
_PRIMITIVE = {"int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1",
              "uint16": "u2", "uint32": "u4", "uint64": "u8", "float": "f4", "double": "f8"}


def _primitive(arr) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(values, validity or None) of an integer or float pyarrow array, read from its
    buffers; None for other types. ``Array.to_numpy`` imports pandas (0.2 s) to do this."""
    import numpy as np

    code = _PRIMITIVE.get(str(arr.type))
    if code is None:
        return None
    n, offset = len(arr), arr.offset
    if n == 0:
        return np.empty(0, dtype=code), None
    validity, data = arr.buffers()[:2]
    values = np.frombuffer(data, dtype=code, count=offset + n)[offset:]
    valid = None
    if arr.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        valid = bits[offset:offset + n].astype(bool)
    return values, valid


def _is_text_dictionary(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_dictionary(kind) and (pa.types.is_string(kind.value_type)
                                             or pa.types.is_large_string(kind.value_type))


def _text_or_none(value: Any) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return None
    return str(value)


# --------------------------------------------------------------------------- API

def compared_columns(columns: Sequence[str] | None, categorical: Iterable[str] | None,
                     sides: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[str], set[str]]:
    """``(columns, forced categorical)`` for a comparison of ``sides`` (``(name, columns)``,
    reference first): by default the columns every side has, in reference order; a named
    column missing on a side, or a forced categorical not compared, is a DataError. Shared
    by the pandas and the Spark engines."""
    if columns is None:
        others = [set(cols) for _, cols in sides[1:]]
        columns = [c for c in sides[0][1] if all(c in o for o in others)]
    else:
        columns = list(columns)
        for name, cols in sides:
            missing = [c for c in columns if c not in cols]
            if missing:
                raise DataError(f"{name}: column {missing[0]!r} not found "
                                f"(columns: {', '.join(list(cols)[:20])})")
    forced = set(categorical or ())
    unknown = forced - set(columns)
    if unknown:
        raise DataError(f"categorical column {sorted(unknown)[0]!r} is not among the compared "
                        "columns")
    return columns, forced


def compare(reference: pd.DataFrame | str | os.PathLike, current: pd.DataFrame | str | os.PathLike,
            *, columns: Sequence[str] | None = None, categorical: Iterable[str] | None = None,
            bins: int = 10, threads: int | None = None) -> list[ColumnDrift]:
    """Drift of every column (default: the columns both sides share, in reference order).

    ``reference``/``current`` are DataFrames or table paths (Parquet read column by
    column). ``categorical`` forces columns to be treated as categorical (e.g. integer
    codes). Raises :class:`DataError` for a named column missing on either side.
    """
    if bins < 2:
        raise ValueError("bins must be at least 2")
    ref = _Frame(reference, "reference")
    cur = _Frame(current, "current")
    columns, forced = compared_columns(columns, categorical,
                                       ((ref.name, ref.columns), (cur.name, cur.columns)))

    local = threading.local()  # one _Scratch per worker thread, freed with this call

    def one(column: str) -> ColumnDrift:
        numeric = column not in forced and ref.is_numeric(column)
        if numeric:
            scratch = getattr(local, "scratch", None)
            if scratch is None:
                scratch = local.scratch = _Scratch()
            return _numeric(column, ref.float64(column, scratch), cur.float64(column, scratch),
                            bins, scratch)
        return _categorical(column, ref.arrow(column), cur.arrow(column))

    workers = threads or min(4, os.cpu_count() or 1, max(1, len(columns)))
    if workers <= 1 or len(columns) <= 1:
        return [one(c) for c in columns]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlcd-drift") as pool:
        return list(pool.map(one, columns))


def drifted(results: Iterable[ColumnDrift], psi: float = 0.2, js: float = 0.1) -> list[str]:
    """Columns over the default thresholds (PSI for numeric, JS for categorical)."""
    out = []
    for r in results:
        value = r.psi if r.kind == NUMERIC else r.js
        limit = psi if r.kind == NUMERIC else js
        if value is not None and value > limit:
            out.append(r.column)
    return out


# --------------------------------------------------------------------------- numeric

def _numeric(column: str, ref: np.ndarray, cur: np.ndarray, bins: int,
             scratch: _Scratch | None = None) -> ColumnDrift:
    import numpy as np

    out = ColumnDrift(column, NUMERIC, ref_rows=int(ref.size), cur_rows=int(cur.size))
    a, out.ref_nulls, out.ref_nonfinite = _finite(ref)
    b, out.cur_nulls, out.cur_nonfinite = _finite(cur)
    out.ref_count, out.cur_count = int(a.size), int(b.size)
    if a.size == 0 or b.size == 0:
        side = "reference" if a.size == 0 else "current"
        out.notes.append(f"no finite values in the {side} data; drift not computed")
        return out
    # quantile edges of the reference, plus its min and (just above) its max
    qs = np.arange(1, bins) / bins
    kth = np.minimum((qs * a.size).astype(np.int64), a.size - 1)
    if a.size + b.size < GRID_MIN_VALUES:
        a.sort()  # a private copy (see _finite)
        b.sort()
        highest, inner = a[-1], a[kth]
        top = np.nextafter(highest, np.inf)
        edges = np.unique(np.concatenate(([a[0]], inner, [top]))) + 0.0  # -0 -> 0 in labels
        ref_below = np.searchsorted(a, edges, "left")
        cur_below = np.searchsorted(b, edges, "left")
        out.ks = _ks_statistic(a, b)
    else:  # the same numbers without sorting either side
        grid = _Grid(a, b, scratch=scratch)
        highest, inner = grid.a.high, grid.a.order_statistics(kth)
        top = np.nextafter(highest, np.inf)
        edges = np.unique(np.concatenate(([grid.a.low], inner, [top]))) + 0.0
        ref_below = grid.a.count_below(edges)
        cur_below = grid.b.count_below(edges)
        out.ks = grid.ks()
    ref_counts = np.diff(np.concatenate(([0], ref_below, [a.size])))
    cur_counts = np.diff(np.concatenate(([0], cur_below, [b.size])))
    p = ref_counts / a.size
    q = cur_counts / b.size
    out.psi = _psi(p, q)
    out.ks_pvalue = _ks_pvalue(out.ks, a, b)
    out.bin_labels, out.ref_hist, out.cur_hist = bin_labels(edges, highest), p.tolist(), q.tolist()
    return out


def bin_labels(edges: Sequence[float], top: float) -> list[str]:
    """Labels of the PSI bins: below the reference minimum, the quantile bins, above its
    maximum ``top`` (shared with the Spark engine)."""
    labels = [f"< {_short(edges[0])}"]
    labels += [f"[{_short(lo)}, {_short(hi)})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels[-1] = f"[{_short(edges[-2])}, {_short(top)}]" if len(edges) > 1 else labels[-1]
    labels.append(f"> {_short(top)}")
    return labels


def _finite(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(the finite values, nulls, +-inf count). The values may be ``x`` itself, which is
    always the caller's private copy."""
    import numpy as np

    finite = np.isfinite(x)
    n_finite = int(np.count_nonzero(finite))
    if n_finite == x.size:
        return x, 0, 0
    nulls = int(np.count_nonzero(np.isnan(x)))
    return x[finite], nulls, int(x.size - n_finite - nulls)


class _Scratch:
    """Arrays reused from one column to the next in a worker thread: a fresh 8 MB array per
    column and side costs its page faults every time (on a VM, a third of the drift time)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, size: int, dtype) -> np.ndarray:
        import numpy as np

        arr = self._arrays.get(name)
        if arr is None or arr.size < size or arr.dtype != np.dtype(dtype):
            arr = self._arrays[name] = np.empty(size, dtype=dtype)
        return arr[:size]


class _Grid:
    """A fine equal-width histogram over both sides of a numeric column.

    The bin of ``x`` is ``floor((x - lo) * scale)`` capped at the last bin: a
    non-decreasing function of ``x`` in floating point, so every value in a lower bin is
    smaller than every value in a higher bin and equal values share a bin. Order statistics,
    counts below an edge and the Kolmogorov–Smirnov supremum then come exactly from the bin
    counts plus the values of the few bins that can matter (sorted there), instead of
    sorting both columns: two 1M-value sorts per column were most of the drift time.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, nbins: int | None = None,
                 scratch: _Scratch | None = None) -> None:
        lo = min(float(a.min()), float(b.min()))
        span = max(float(a.max()), float(b.max())) - lo
        nbins = nbins or int(min(GRID_BINS, max(1, (a.size + b.size) // 16)))
        scale = nbins / span if span > 0 else 0.0
        if not (math.isfinite(scale) and scale > 0):  # one value, or a span beyond floats
            nbins, scale = 1, 0.0
        self.lo, self.scale, self.nbins = lo, scale, nbins
        self.scratch = scratch or _Scratch()
        self.a = _GridSide(self, a, "a")
        self.b = _GridSide(self, b, "b")

    def index(self, x: np.ndarray, name: str | None = None) -> np.ndarray:
        """The bin of each value (into the scratch array ``name`` when given)."""
        import numpy as np

        out = (np.empty(x.size, dtype=np.intp) if name is None
               else self.scratch.get(name, x.size, np.intp))
        if self.nbins == 1:
            out[:] = 0
            return out
        t = self.scratch.get("grid-t", x.size, np.float64) if name else None
        t = np.subtract(x, self.lo, out=t, dtype=np.float64)
        t *= self.scale
        np.clip(t, 0, self.nbins - 1, out=t)
        np.copyto(out, t, casting="unsafe")  # truncation: the floor of a value >= 0
        return out

    def ks(self) -> float:
        """The two-sample KS statistic, equal to :func:`_ks_statistic` of the sorted sides.

        In integers scaled by n*m, ``d(t) = m*#(a <= t) - n*#(b <= t)``. Between bins ``d``
        is known from the counts (``m*A0 - n*B0``); inside bin ``i`` it lies between
        ``m*A0 - n*B1`` and ``m*A1 - n*B0``. Only bins whose bound beats the best value
        known between bins are resolved, from their sorted values."""
        import numpy as np

        a, b = self.a, self.b
        n, m = a.size, b.size
        best = int(np.abs(m * a.before - n * b.before).max())
        bound = np.maximum(m * a.upto - n * b.before, n * b.upto - m * a.before)
        chosen = bound > best
        mass = int(a.counts[chosen].sum() + b.counts[chosen].sum())
        if mass == 0:
            return best / (n * m)
        if 2 * mass > n + m:  # the grid does not separate the values: sort them all
            return _ks_statistic(np.sort(a.values), np.sort(b.values))
        sa, offset_a = a.gather(chosen)
        sb, offset_b = b.gather(chosen)
        points = np.concatenate((sa, sb))
        where = self.index(points)
        count_a = np.searchsorted(sa, points, "right") + (a.before - offset_a)[where]
        count_b = np.searchsorted(sb, points, "right") + (b.before - offset_b)[where]
        inside = int(np.abs(m * count_a - n * count_b).max())
        return max(best, inside) / (n * m)


class _GridSide:
    """One side's values on a :class:`_Grid`: the bin of each value, counts per bin."""

    def __init__(self, grid: _Grid, values: np.ndarray, name: str) -> None:
        import numpy as np

        self.grid = grid
        self.values = values
        self.size = int(values.size)
        self.low, self.high = values.min(), values.max()
        self.bin = grid.index(values, f"grid-bin-{name}")
        self.counts = np.bincount(self.bin, minlength=grid.nbins)
        self.upto = np.cumsum(self.counts)        # values in bins <= i
        self.before = self.upto - self.counts     # values in bins < i

    def gather(self, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The values in the bins where ``chosen`` is True, sorted, and per bin how many of
        them lie in chosen bins before it."""
        import numpy as np

        mask = self.grid.scratch.get("grid-mask", self.size, np.bool_)
        np.take(chosen, self.bin, out=mask)
        picked = np.sort(self.values[mask])
        taken = np.where(chosen, self.counts, 0)
        return picked, np.cumsum(taken) - taken

    def order_statistics(self, kth: np.ndarray) -> np.ndarray:
        """``np.sort(values)[kth]`` without sorting every value."""
        import numpy as np

        where = np.searchsorted(self.upto, kth, "right")  # the bin holding each k-th value
        chosen = np.zeros(self.grid.nbins, dtype=bool)
        chosen[where] = True
        picked, offset = self.gather(chosen)
        return picked[kth - self.before[where] + offset[where]]

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        """``np.searchsorted(np.sort(values), edges, "left")``: values below each edge."""
        import numpy as np

        where = self.grid.index(edges)
        chosen = np.zeros(self.grid.nbins, dtype=bool)
        chosen[where] = True
        picked, offset = self.gather(chosen)
        return self.before[where] + np.searchsorted(picked, edges, "left") - offset[where]


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    import numpy as np

    p = np.maximum(p, PSI_EPSILON)
    q = np.maximum(q, PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """sup |F_a - F_b| for sorted finite arrays, from one merge of ``b`` into ``a``.

    Work is in integers scaled by n*m (exact). ``D-`` (F_b above F_a) is attained at a
    point of ``b``; ``D+`` (F_a above F_b) just before the next distinct point of ``b``.
    Without ties (no value of ``b`` repeated or equal to a value of ``a``) both come from
    one array ``e_j = m*#(a <= b_j) - n*(j+1)``: ``D- = -min e``, ``D+ = max e + n``.
    """
    import numpy as np

    n, m = a.size, b.size
    right = np.searchsorted(a, b, "right")            # #a <= b_j
    idx = right - 1
    cross = bool(np.any(a.take(idx, mode="clip") == b))  # some b_j equals an a value
    del idx
    b_ties = bool(np.any(b[1:] == b[:-1]))
    k = np.arange(1, m + 1, dtype=np.int64)           # #b <= b_j at the last of a tie
    if not cross and not b_ties:
        e = right * m
        k *= n
        e -= k
        return max(-int(e.min()), int(e.max()) + n, 0) / (n * m)
    left = np.searchsorted(a, b, "left") if cross else right   # #a < b_j
    d_minus = int(np.max(k * n - right * m))
    plus = left[1:] * m - k[:-1] * n                  # F_a(b_{j+1}-) - F_b(b_j)
    if b_ties:
        plus = plus[b[1:] != b[:-1]]
    d_plus = max(int(left[0]) * m, int(np.max(plus)) if plus.size else 0)
    return max(d_minus, d_plus, 0) / (n * m)


def _ks_pvalue(d: float, a: np.ndarray, b: np.ndarray) -> float:
    """Exact for n*m <= EXACT_KS_MAX; scipy's ``kstwo`` (as ``ks_2samp(method='asymp')``)
    up to an effective size of ASYMP_KSTWO_MAX; beyond, the limiting Kolmogorov distribution
    (``kstwo`` costs seconds there and the two agree to ~1e-3 relative)."""
    n, m = a.size, b.size
    if n * m <= EXACT_KS_MAX:
        from scipy import stats

        return float(stats.ks_2samp(a, b, method="exact").pvalue)
    en = round(n * m / (n + m))
    if en <= ASYMP_KSTWO_MAX:
        from scipy.stats import kstwo

        return float(min(1.0, max(0.0, kstwo.sf(d, max(1, en)))))
    from scipy.special import kolmogorov

    return float(min(1.0, max(0.0, kolmogorov(math.sqrt(en) * d))))


# --------------------------------------------------------------------------- categorical

def _categorical(column: str, ref, cur) -> ColumnDrift:
    ref_vals, ref_counts, ref_nulls = _value_counts(ref)
    cur_vals, cur_counts, cur_nulls = _value_counts(cur)
    return categorical_from_counts(column, (ref_vals, ref_counts, ref_nulls, len(ref)),
                                   (cur_vals, cur_counts, cur_nulls, len(cur)))


def categorical_from_counts(column: str, ref: tuple, cur: tuple) -> ColumnDrift:
    """The categorical statistics from ``(values sorted as text, counts, nulls, rows)`` per
    side (shared with the Spark engine, which counts with a ``groupBy``)."""
    import numpy as np

    ref_vals, ref_counts, ref_nulls, ref_rows = ref
    cur_vals, cur_counts, cur_nulls, cur_rows = cur
    out = ColumnDrift(column, CATEGORICAL, ref_rows=ref_rows, cur_rows=cur_rows,
                      ref_nulls=ref_nulls, cur_nulls=cur_nulls)
    out.ref_count, out.cur_count = int(ref_counts.sum()), int(cur_counts.sum())
    if out.ref_count == 0 or out.cur_count == 0:
        side = "reference" if out.ref_count == 0 else "current"
        out.notes.append(f"no non-null values in the {side} data; drift not computed")
        return out
    cats = np.union1d(ref_vals, cur_vals)
    r = np.zeros(cats.size, dtype=np.float64)
    c = np.zeros(cats.size, dtype=np.float64)
    r[np.searchsorted(cats, ref_vals)] = ref_counts
    c[np.searchsorted(cats, cur_vals)] = cur_counts
    new = cats[(r == 0) & (c > 0)]
    missing = cats[(r > 0) & (c == 0)]
    out.new_category_count, out.missing_category_count = int(new.size), int(missing.size)
    out.new_categories = [str(v) for v in new[:MAX_LISTED_CATEGORIES]]
    out.missing_categories = [str(v) for v in missing[:MAX_LISTED_CATEGORIES]]
    p, q = r / r.sum(), c / c.sum()
    out.linf = float(np.max(np.abs(p - q)))
    out.js = _js_distance(p, q)
    out.chi2, out.chi2_pvalue = _chi2_homogeneity(r, c)
    top = np.argsort(-(r + c), kind="stable")[:HIST_TOP_CATEGORIES]
    out.bin_labels = [str(v) for v in cats[top]]
    out.ref_hist, out.cur_hist = p[top].tolist(), q[top].tolist()
    if cats.size > HIST_TOP_CATEGORIES:
        rest = np.ones(cats.size, dtype=bool)
        rest[top] = False
        out.bin_labels.append(f"({int(rest.sum())} others)")
        out.ref_hist.append(float(p[rest].sum()))
        out.cur_hist.append(float(q[rest].sum()))
    return out


def _value_counts(arr) -> tuple[np.ndarray, np.ndarray, int]:
    import numpy as np
    import pyarrow as pa

    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    if chunks and all(_is_text_dictionary(c.type) for c in chunks):
        return _dictionary_counts(chunks)
    import pyarrow.compute as pc  # 0.1 s of import the dictionary path does without

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_floating(arr.type):
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    nulls = int(arr.null_count)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    vc = pc.value_counts(pc.drop_null(arr))
    values = vc.field("values").to_numpy(zero_copy_only=False).astype(str)
    counts = vc.field("counts").to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(values, kind="stable")
    return values[order], counts[order], nulls


def _dictionary_counts(chunks) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_value_counts` of dictionary arrays of text: counts of the indices per
    dictionary, merged by value, without decoding a string per row."""
    import numpy as np

    names: list[str] = []
    counts: list[np.ndarray] = []
    nulls = 0
    for chunk in chunks:
        size = len(chunk.dictionary)
        plain = _primitive(chunk.indices)
        if plain is None or size == 0:  # no dictionary: every row is null
            nulls += chunk.null_count
            continue
        idx, valid = plain
        nulls += chunk.null_count
        per = np.bincount(idx if valid is None else idx[valid], minlength=size)
        words = chunk.dictionary.to_pylist()
        for i, word in enumerate(words):
            if word is None:
                nulls += int(per[i])
        keep = np.array([w is not None for w in words], dtype=bool) & (per > 0)
        names.extend(w for w, k in zip(words, keep, strict=True) if k)
        counts.append(per[keep])
    if not names:
        return np.array([], dtype=str), np.array([], dtype=np.int64), nulls
    values, where = np.unique(np.array(names, dtype=str), return_inverse=True)
    total = np.zeros(values.size, dtype=np.int64)
    np.add.at(total, where, np.concatenate(counts).astype(np.int64))
    return values, total, nulls


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    import numpy as np

    mid = 0.5 * (p + q)

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / mid[nz])))

    div = 0.5 * kl(p) + 0.5 * kl(q)
    return float(math.sqrt(max(0.0, min(1.0, div))))


def _chi2_homogeneity(r: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-square on the 2 x k table [reference counts; current counts].

    Categories whose expected count is under :data:`CHI2_MIN_EXPECTED` on either side are
    pooled into one (and that pool into the smallest other category while it is still
    under), so the chi-square approximation holds on small batches too."""
    import numpy as np
    from scipy.special import chdtrc

    total = r.sum() + c.sum()
    if r.size < 2 or total == 0:
        return 0.0, 1.0
    share_r, share_c = r.sum() / total, c.sum() / total
    small = np.minimum((r + c) * share_r, (r + c) * share_c) < CHI2_MIN_EXPECTED
    if small.any():
        big_r, big_c = r[~small], c[~small]
        pool_r, pool_c = r[small].sum(), c[small].sum()
        pool_small = (pool_r + pool_c) * min(share_r, share_c) < CHI2_MIN_EXPECTED
        if big_r.size and pool_small:
            i = int(np.argmin(big_r + big_c))
            big_r, big_c = big_r.copy(), big_c.copy()
            big_r[i] += pool_r
            big_c[i] += pool_c
            r, c = big_r, big_c
        else:
            r, c = np.append(big_r, pool_r), np.append(big_c, pool_c)
    k = r.size
    if k < 2:
        return 0.0, 1.0
    col = r + c
    er = col * share_r
    ec = col * share_c
    stat = float(np.sum((r - er) ** 2 / er) + np.sum((c - ec) ** 2 / ec))
    return stat, float(chdtrc(k - 1, stat))


# --------------------------------------------------------------------------- helpers

def _short(value: float) -> str:
    return f"{float(value):.4g}"



def read_columns(path: str | os.PathLike) -> list[str]:
    """Column names of a table path without reading its data (Parquet) or with it."""
    return _Frame(Path(path), "data").columns

"""Scanning columns for PII (:func:`scan_frame`) with pyarrow's RE2 kernels, whole columns,
no sampling (see the package docstring for how it stays fast)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa
from mlcd_actions.data.pii.patterns import (
    _HINT_VALUE,
    _KIND_OF_PATTERN,
    _PY,
    _PY_ANCHORED,
    _REGEX_ONLY,
    _SCALAR_CHECK,
    ANCHORED,
    DATE,
    HASHED,
    IBAN_LENGTHS,
    IPV6_STRICT,
    KINDS,
    NAME_HINTS,
    PATTERNS,
    PHONE_DIGITS,
    SHORT_VALUES,
    UNION,
    UNION_EXCEPT,
    credit_card_valid,
    iban_valid,
    mask,
    mask_value,
)

MAX_ROWS = 5       # sample rows kept per finding
MAX_EXAMPLES = 3   # masked examples kept per finding
CHUNK_ROWS = 1 << 18

# --------------------------------------------------------------------------- scanning

@dataclass
class Hit:
    """PII of one kind in one column."""

    column: str
    kind: str
    count: int                      # values holding at least one match
    non_null: int                   # values scanned in the column
    rows: list[int] = field(default_factory=list)       # 0-based positions, first few
    examples: list[str] = field(default_factory=list)   # masked
    by_name: bool = False           # found through the column-name hint

    @property
    def share(self) -> float:
        return self.count / self.non_null if self.non_null else 0.0


@dataclass
class ScanResult:
    hits: list[Hit]
    bytes_scanned: int
    rows: int
    columns: list[str]
    seconds: float = 0.0


def name_hints(column: str) -> list[str]:
    return [kind for kind, rx in NAME_HINTS.items() if rx.search(str(column))]


def to_strings(series: pd.Series) -> pa.Array | None:
    """The column as an Arrow string array (None when it holds no text worth scanning)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = to_strings(pd.Series(series.cat.categories))
        if cats is None:
            return None
        codes = pa.array(series.cat.codes.to_numpy(), type=pa.int32())
        codes = pc.if_else(pc.equal(codes, -1), None, codes)
        return pc.take(cats, codes)
    if pd.api.types.is_string_dtype(dtype) or dtype == "object":
        try:
            arr = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = None
        if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            mask_ = series.isna().to_numpy()
            arr = pa.array(series.astype(str).to_numpy(dtype=object), type=pa.large_string(),
                           mask=mask_)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        return arr
    if pd.api.types.is_integer_dtype(dtype):
        return pc.cast(pa.array(series, from_pandas=True), pa.string())
    return None


def _positions(mask_arr) -> Any:
    import numpy as np
    import pyarrow.compute as pc

    return np.flatnonzero(pc.fill_null(mask_arr, False).to_numpy(zero_copy_only=False))


def _fixed_matrix(arr, width: int):
    """Values of one length as an (n, width) uint8 matrix, without a Python loop."""
    import numpy as np
    import pyarrow as pa

    arr = pa.concat_arrays([arr.cast(pa.large_string())]) if len(arr) else arr
    n = len(arr)
    if n == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    return data[start:start + n * width].reshape(n, width)


def _luhn_ok(digits) -> Any:
    """Vectorised Luhn + card prefix over an Arrow array of digit strings."""
    import numpy as np
    import pyarrow.compute as pc

    ok = np.zeros(len(digits), dtype=bool)
    lengths = pc.utf8_length(digits).to_numpy(zero_copy_only=False)
    for width in range(13, 20):
        idx = np.flatnonzero(lengths == width)
        if not len(idx):
            continue
        mat = _fixed_matrix(digits.take(idx), width).astype(np.int16) - 48
        if ((mat < 0) | (mat > 9)).any():  # not pure digits: leave to the scalar check
            ok[idx] = [credit_card_valid(s) for s in digits.take(idx).to_pylist()]
            continue
        double = (np.arange(width)[::-1] % 2) == 1
        vals = mat.copy()
        vals[:, double] *= 2
        vals[vals > 9] -= 9
        luhn = vals.sum(axis=1) % 10 == 0
        first = mat[:, 0]
        four = mat[:, 0] * 1000 + mat[:, 1] * 100 + mat[:, 2] * 10 + mat[:, 3]
        prefix = ((first >= 3) & (first <= 6)) | ((four >= 2221) & (four <= 2720))
        ok[idx] = luhn & prefix
    return ok


def _iban_ok(compact) -> Any:
    """Vectorised registered-length + mod-97 check over an Arrow array of IBANs."""
    import numpy as np
    import pyarrow.compute as pc

    ok = np.zeros(len(compact), dtype=bool)
    lengths = pc.utf8_length(compact).to_numpy(zero_copy_only=False)
    countries = pc.utf8_slice_codeunits(compact, 0, 2).to_numpy(zero_copy_only=False)
    expected = np.array([IBAN_LENGTHS.get(c, -1) for c in countries], dtype=np.int64) \
        if len(countries) else np.zeros(0, dtype=np.int64)
    for width in np.unique(lengths):
        idx = np.flatnonzero((lengths == width) & (expected == width))
        if not len(idx):
            continue
        mat = _fixed_matrix(compact.take(idx), int(width)).astype(np.int64)
        mat = np.concatenate([mat[:, 4:], mat[:, :4]], axis=1)
        is_digit = (mat >= 48) & (mat <= 57)
        is_upper = (mat >= 65) & (mat <= 90)
        if not (is_digit | is_upper).all():
            ok[idx] = [iban_valid(s) for s in compact.take(idx).to_pylist()]
            continue
        value = np.where(is_digit, mat - 48, mat - 55)
        r = np.zeros(len(idx), dtype=np.int64)
        for j in range(int(width)):
            r = np.where(is_digit[:, j], (r * 10 + value[:, j]) % 97,
                         (r * 100 + value[:, j]) % 97)
        ok[idx] = r == 1
    return ok


def _validate_first(name: str, first):
    """Vectorised validation of the first match of pattern ``name`` in each value."""
    import pyarrow.compute as pc

    if name == "credit_card":
        return _luhn_ok(pc.replace_substring_regex(first, r"[ \-]", ""))
    if name == "iban":
        return _iban_ok(pc.replace_substring(first, " ", ""))
    if name == "phone":
        return pc.fill_null(pc.match_substring_regex(first, PHONE_DIGITS), False).to_numpy(
            zero_copy_only=False)
    if name == "ipv6":
        return pc.fill_null(pc.match_substring_regex(first, IPV6_STRICT), False).to_numpy(
            zero_copy_only=False)
    raise KeyError(name)


class _Acc:
    """Accumulates one (column, kind) over chunks."""

    def __init__(self) -> None:
        self.count = 0
        self.rows: list[int] = []
        self.examples: list[str] = []

    def add(self, positions, base: int, arr, kind: str) -> None:
        self.count += len(positions)
        for p in positions[: max(0, MAX_ROWS - len(self.rows))]:
            self.rows.append(int(base + p))
            if len(self.examples) < MAX_EXAMPLES:
                example = _example(arr[int(p)].as_py(), kind)
                if example:
                    self.examples.append(example)


def _example(value: str | None, kind: str) -> str | None:
    """The first validated match of ``kind`` in ``value``, masked."""
    if value is None:
        return None
    for name, rx in _PY.items():
        if _KIND_OF_PATTERN.get(name, name) != kind:
            continue
        check = _SCALAR_CHECK.get(name)
        for m in rx.finditer(value):
            if check is None or check(m.group(0)):
                text = m.group(0)
                if kind == "date_of_birth":
                    date = re.search(DATE, text, re.ASCII)
                    text = date.group(0) if date else text
                return mask(kind, text)
    return mask(kind, value)


def _sorted_union(parts: list) -> Any:
    import numpy as np

    if not parts:
        return np.zeros(0, dtype=np.int64)
    a = np.sort(np.concatenate(parts)) if len(parts) > 1 else np.asarray(parts[0])
    if len(a) > 1:
        a = a[np.concatenate([[True], a[1:] != a[:-1]])]
    return a


def _valid_rows(sub, name: str) -> Any:
    """Positions in ``sub`` holding at least one valid match of pattern ``name``."""
    import numpy as np
    import pyarrow.compute as pc

    pattern = PATTERNS[name]
    local = _positions(pc.match_substring_regex(sub, pattern))
    if not len(local) or name in _REGEX_ONLY:
        return local
    vals = sub.take(local)
    # values that are one match as a whole (a PII column) are validated as they are;
    # only values with text around the match need the (slower) submatch extraction
    full = _positions(pc.match_substring_regex(vals, ANCHORED[name]))
    ok = np.zeros(len(vals), dtype=bool)
    if len(full):
        ok[full] = _validate_first(name, pc.utf8_trim_whitespace(vals.take(full)))
    part = np.setdiff1d(np.arange(len(vals)), full, assume_unique=True)
    if len(part):
        first = pc.struct_field(pc.extract_regex(vals.take(part), f"(?P<m>{pattern})"), [0])
        ok[part] = _validate_first(name, first)
    retry = np.flatnonzero(~ok)
    if len(retry):
        # a later match may be valid where the first was a look-alike
        many = pc.count_substring_regex(vals.take(retry), pattern).to_numpy(
            zero_copy_only=False) > 1
        check = _SCALAR_CHECK[name]
        for j in retry[many]:
            text = vals[int(j)].as_py()
            if any(check(x.group(0)) for x in _PY[name].finditer(text)):
                ok[j] = True
    return local[ok]


def dominant_patterns(arr, sample: int = 1000) -> list[str]:
    """Patterns that whole values of this column match (a PII column), from its first
    non-null values. Only a speed hint: every row is still checked for every kind."""
    values = [v for v in arr.slice(0, sample * 2).to_pylist() if v][:sample]
    if not values:
        return []
    out = []
    for name in PATTERNS:
        rx = _PY_ANCHORED[name]
        if sum(1 for v in values if rx.match(v)) >= 0.2 * len(values):
            out.append(name)
    return out


def _scan_chunk(arr, hints: list[str], is_int: bool,
                dominant: list[str] = ()) -> dict[str, Any]:
    """Positions (within ``arr``) of the values holding each kind."""
    import numpy as np
    import pyarrow.compute as pc

    found: dict[str, list] = {}
    for kind in hints:   # value-level checks in columns named like the kind
        pos = _positions(pc.match_substring_regex(arr, _HINT_VALUE[kind]))
        if len(pos):
            found.setdefault(kind, []).append(pos)
    if is_int:   # integers: beyond the name hints, only bare card numbers hide there
        pos = _positions(pc.match_substring_regex(arr, r"^[0-9]{13,19}$"))
        if len(pos):
            pos = pos[_luhn_ok(arr.take(pos))]
            if len(pos):
                found.setdefault("credit_card", []).append(pos)
        return {k: _sorted_union(v) for k, v in found.items()}
    rest = np.arange(len(arr))
    for name in dominant:
        # PII column fast path: values that are wholly one match are validated directly;
        # one more pass with the other patterns finds anything else inside them
        sub = arr.take(rest) if len(rest) != len(arr) else arr
        full = _positions(pc.match_substring_regex(sub, ANCHORED[name]))
        if not len(full):
            continue
        vals = sub.take(full)
        if name in _REGEX_ONLY:
            ok = np.ones(len(full), dtype=bool)
        else:
            ok = _validate_first(name, pc.utf8_trim_whitespace(vals))
        if ok.any():
            found.setdefault(_KIND_OF_PATTERN.get(name, name), []).append(rest[full[ok]])
        others = _positions(pc.match_substring_regex(vals, UNION_EXCEPT[name]))
        failed = np.flatnonzero(~ok)
        if len(failed):   # a look-alike value: only one holding a second match is rechecked
            many = pc.count_substring_regex(vals.take(failed), PATTERNS[name]).to_numpy(
                zero_copy_only=False) > 1
            failed = failed[many]
        again = _sorted_union([full[failed], full[others]])
        keep = np.ones(len(rest), dtype=bool)
        keep[full] = False
        keep[again] = True
        rest = rest[keep]
    if len(rest):
        sub = arr.take(rest) if len(rest) != len(arr) else arr
        cand = _positions(pc.match_substring_regex(sub, UNION))
        if len(cand):
            csub = sub.take(cand)
            for name in PATTERNS:
                local = _valid_rows(csub, name)
                if len(local):
                    found.setdefault(_KIND_OF_PATTERN.get(name, name), []).append(
                        rest[cand[local]])
    return {k: _sorted_union(v) for k, v in found.items()}


def scan_frame(df: pd.DataFrame, columns: Iterable[str] | None = None,
               on_progress: Callable[[int], None] | None = None) -> ScanResult:
    """Scan every text (and integer) column of ``df`` for PII; full data, no sampling."""
    import time

    import pandas as pd
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    hits: list[Hit] = []
    total_bytes = 0
    scanned: list[str] = []
    for col in (list(columns) if columns is not None else list(df.columns)):
        series = df[col]
        hints = name_hints(str(col))
        is_dt = pd.api.types.is_datetime64_any_dtype(series.dtype)
        if is_dt or (series.dtype == "object" and len(series)
                     and _looks_like_dates(series)):
            non_null = int(series.notna().sum())
            if "date_of_birth" in hints and non_null:
                pos = [int(i) for i in (series.notna().to_numpy().nonzero()[0][:MAX_ROWS])]
                examples = [mask("date_of_birth", str(series.iloc[p])[:10])
                            for p in pos[:MAX_EXAMPLES]]
                hits.append(Hit(str(col), "date_of_birth", non_null, non_null, pos, examples,
                                by_name=True))
                scanned.append(str(col))
            continue
        arr = to_strings(series)
        if arr is None:
            continue
        is_int = pd.api.types.is_integer_dtype(series.dtype)
        scanned.append(str(col))
        non_null = len(arr) - arr.null_count
        accs = {k: _Acc() for k in KINDS}
        dominant: list[str] = []
        if not is_int and non_null:
            mean_len = int(pc.sum(pc.binary_length(arr)).as_py() or 0) / non_null
            dominant = dominant_patterns(arr) if mean_len <= SHORT_VALUES else []
        for start in range(0, len(arr), CHUNK_ROWS):
            chunk = arr.slice(start, CHUNK_ROWS)
            nbytes = int(pc.sum(pc.binary_length(chunk)).as_py() or 0)
            total_bytes += nbytes
            for kind, positions in _scan_chunk(chunk, hints, is_int, dominant).items():
                accs[kind].add(positions, start, chunk, kind)
            if on_progress:
                on_progress(nbytes)
        for kind in KINDS:
            acc = accs[kind]
            if acc.count:
                hits.append(Hit(str(col), kind, acc.count, non_null, acc.rows, acc.examples,
                                by_name=kind in hints))
    return ScanResult(hits, total_bytes, len(df), scanned, time.perf_counter() - t0)


def _looks_like_dates(series: pd.Series) -> bool:
    import datetime as dt

    first = series.dropna()
    return bool(len(first)) and isinstance(first.iloc[0], (dt.date, dt.datetime))


def unhashed(series: pd.Series) -> tuple[int, list[int], list[str]]:
    """Values of a must-be-hashed column that do not look like a hash:
    (count, first rows, masked examples)."""
    import numpy as np
    import pyarrow.compute as pc

    arr = to_strings(series)
    if arr is None:  # numbers, dates, booleans: never a hash
        pos = np.flatnonzero(series.notna().to_numpy())
    else:
        stripped = pc.utf8_trim_whitespace(arr)
        ok = pc.match_substring_regex(stripped, HASHED)
        pos = np.flatnonzero(pc.and_(pc.invert(ok), pc.is_valid(arr)).to_numpy(
            zero_copy_only=False))
    rows = [int(p) for p in pos[:MAX_ROWS]]
    examples = [mask_value(series.iloc[p]) for p in rows[:MAX_EXAMPLES]]
    return len(pos), rows, examples

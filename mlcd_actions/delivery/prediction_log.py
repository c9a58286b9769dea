"""Reading the prediction log that ``mlcd serve`` writes, for ``mlcd monitor``.

Format: JSON lines, one line per predicted row::

    {"ts": "2026-11-27T10:00:00+00:00", "request_id": "r-1", "row": 0,
     "model_name": "credit", "model_version": "3", "lineage_id": "…",
     "inputs": {"age": 41, "income": 52000.0, "city": "Lyon"},
     "prediction": 1, "proba": 0.83, "latency_ms": 4.2}

A ``.jsonl``/``.ndjson`` file whose first record has an ``inputs`` object is a prediction
log (:func:`is_prediction_log`). :func:`read` flattens ``inputs`` into one column per
feature and keeps ``prediction`` as the column ``prediction``; the other fields come back
in a separate frame (``request_id``, ``row``, ``ts``, ``model_name``, ``model_version``,
``lineage_id``, ``latency_ms``) so a feature may share a name with them.

pyarrow's JSON reader does the work (block by block, in C++); when it cannot (mixed
types in one field, e.g. ``proba`` a float on one line and a list on another), the log is
read line by line in Python, and a malformed line is one clear error naming its line.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PREDICTION = "prediction"
META_FIELDS = ("ts", "request_id", "row", "model_name", "model_version", "lineage_id",
               "latency_ms")
SUFFIXES = (".jsonl", ".ndjson")


def _open(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_log_name(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in SUFFIXES


def log_files(path: str | os.PathLike) -> list[Path]:
    """The log files a path stands for: itself, or the ``.jsonl`` files in a directory
    (serve may rotate its log)."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and _is_log_name(f)
                      and not f.name.startswith("."))
    return [p]


def is_prediction_log(path: str | os.PathLike) -> bool:
    """True for a JSON-lines file (or a directory of them) whose first record has an
    ``inputs`` object."""
    files = log_files(path)
    if not files or not all(_is_log_name(f) and f.is_file() for f in files):
        return False
    try:
        with _open(files[0]) as fh:
            for line in fh:
                if line.strip():
                    first = json.loads(line)
                    return isinstance(first, dict) and isinstance(first.get("inputs"), dict)
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return False


def read(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features + ``prediction``, metadata) of a prediction log; rows in log order."""
    import pandas as pd

    files = log_files(path)
    if not files:
        raise DataError(f"{path}: directory holds no .jsonl prediction log")
    parts = [_read_one(f) for f in files]
    features = pd.concat([p[0] for p in parts], ignore_index=True) if len(parts) > 1 else parts[0][0]
    meta = pd.concat([p[1] for p in parts], ignore_index=True) if len(parts) > 1 else parts[0][1]
    if len(features) == 0:
        raise DataError(f"{path}: the prediction log is empty")
    return features, meta


def _read_one(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() != ".gz":
        try:
            return _read_arrow(path)
        except DataError:
            raise
        except Exception:  # noqa: BLE001 - pyarrow could not; the Python reader says why
            pass
    return _read_python(path)


def _read_arrow(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.json as pj

    table = pj.read_json(path, read_options=pj.ReadOptions(block_size=1 << 24))
    if "inputs" not in table.column_names:
        raise DataError(f"{path}: not a prediction log (no 'inputs' field)")
    inputs = table.column("inputs")
    if not pa.types.is_struct(inputs.type):
        raise ValueError("inputs is not an object on every line")
    flat = inputs.combine_chunks().flatten() if inputs.num_chunks else []
    names = [f.name for f in inputs.type]
    features = pa.table(dict(zip(names, flat, strict=True))) if names else pa.table({})
    if PREDICTION in table.column_names:
        pred = table.column(PREDICTION)
        if pa.types.is_struct(pred.type) or pa.types.is_list(pred.type):
            raise ValueError("structured prediction")
        features = features.append_column(PREDICTION, pred)
    meta = {name: table.column(name) for name in META_FIELDS if name in table.column_names}
    return (features.to_pandas(), pa.table(meta).to_pandas() if meta else _empty_meta(len(table)))


def _empty_meta(n: int) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(index=range(n))


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with _open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON: {exc.msg}",
                                    file=str(path), line=lineno) from exc
                if not isinstance(rec, dict) or not isinstance(rec.get("inputs"), dict):
                    raise DataError(f"{path}:{lineno}: a prediction log line needs an "
                                    "'inputs' object", file=str(path), line=lineno)
                yield lineno, rec
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text at byte {exc.start}") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc


def _read_python(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pandas as pd

    columns: dict[str, list[Any]] = {}
    preds: list[Any] = []
    meta: dict[str, list[Any]] = {k: [] for k in META_FIELDS}
    n = 0
    for _, rec in _records(path):
        for key, value in rec["inputs"].items():
            col = columns.get(key)
            if col is None:
                col = columns[key] = [None] * n
            col.append(value)
        for col in columns.values():
            if len(col) == n:
                col.append(None)
        pred = rec.get(PREDICTION)
        preds.append(json.dumps(pred) if isinstance(pred, (list, dict)) else pred)
        for k in META_FIELDS:
            meta[k].append(rec.get(k))
        n += 1
    features = pd.DataFrame(columns)
    features[PREDICTION] = pd.Series(preds, dtype=object).infer_objects()
    for name in list(features.columns):
        if features[name].dtype == object:
            features[name] = _numeric_or_text(features[name])
    meta_df = pd.DataFrame({k: v for k, v in meta.items() if any(x is not None for x in v)},
                           index=range(n))
    return features, meta_df


def _numeric_or_text(series: pd.Series) -> pd.Series:
    import pandas as pd

    values = series.dropna()
    if len(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pd.to_numeric(series)
    return series

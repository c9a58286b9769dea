"""Reading and writing tables, with one clear line for every way a file can be bad.

Formats by extension: ``.parquet``/``.pq``, ``.csv``/``.tsv``, ``.jsonl``/``.ndjson``,
``.json`` (records); a directory reads every Parquet/CSV/JSONL file in it, in name order.
Missing or unreadable input is a :class:`~mlcd_actions.core.errors.DataError` (exit 2).
pandas and pyarrow are imported inside the functions (fast ``--help``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mlcd_actions.core.errors import DataError, first_line
from mlcd_actions.core.files import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

PARQUET = (".parquet", ".pq")
CSV = (".csv", ".tsv", ".txt")
JSONL = (".jsonl", ".ndjson")
JSON = (".json",)
TABLE_SUFFIXES = PARQUET + CSV + JSONL + JSON


def kind_of(path: str | os.PathLike) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".gz", ".bz2", ".zst", ".xz") and len(suffixes) > 1:
        suffix = suffixes[-2]
    if suffix in PARQUET:
        return "parquet"
    if suffix in CSV:
        return "csv"
    if suffix in JSONL:
        return "jsonl"
    if suffix in JSON:
        return "json"
    raise DataError(f"{path}: unknown table format {suffix or '(no extension)'!r}; "
                    "use .parquet, .csv, .jsonl or .json")


def table_files(path: str | os.PathLike) -> list[Path]:
    """The table files a path stands for: itself, or the tables in a directory."""
    p = Path(path)
    if p.is_dir():
        # a directory holds data files; a .json there is metadata (an ingest manifest)
        data_suffixes = PARQUET + CSV + JSONL
        files = sorted(f for f in p.iterdir()
                       if f.is_file() and not f.name.startswith((".", "_"))
                       and any(s.lower() in data_suffixes for s in f.suffixes))
        if not files:
            raise DataError(f"{p}: directory holds no .parquet, .csv or .jsonl files")
        return files
    if not p.exists():
        raise DataError(f"{p}: no such file")
    return [p]


def read_table(path: str | os.PathLike, *, columns: Iterable[str] | None = None,
               what: str = "data") -> pd.DataFrame:
    """Read one table (or a directory of tables) into a DataFrame."""
    import pandas as pd

    files = table_files(path)
    frames = [_read_one(f, columns) for f in files]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return df


def _read_one(path: Path, columns) -> pd.DataFrame:
    import pandas as pd

    kind = kind_of(path)
    cols = list(columns) if columns is not None else None
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=cols).to_pandas()
        if kind == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            return pd.read_csv(path, sep=sep, usecols=cols, low_memory=False)
        if kind == "jsonl":
            df = pd.read_json(path, lines=True)
            return df[cols] if cols else df
        df = pd.read_json(path, orient="records")
        return df[cols] if cols else df
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise DataError(f"{path}: permission denied") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a directory") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {first_line(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text at byte {exc.start}") from exc
    except KeyError as exc:
        raise DataError(f"{path}: column {exc} not found") from exc
    except ValueError as exc:
        raise DataError(f"{path}: cannot read as {kind}: {first_line(exc)}") from exc
    except Exception as exc:  # pyarrow raises its own zoo (ArrowInvalid, OSError...)
        if type(exc).__module__.startswith("pyarrow") or isinstance(exc, OSError):
            raise DataError(f"{path}: cannot read as {kind}: {first_line(exc)}") from exc
        raise


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write atomically, format by extension (Parquet keeps dtypes; CSV for humans)."""
    target = Path(path)
    kind = kind_of(target)
    with atomic_path(target) as tmp:
        if kind == "parquet":
            df.to_parquet(tmp, index=False)
        elif kind == "csv":
            df.to_csv(tmp, index=False, sep="\t" if target.suffix.lower() == ".tsv" else ",")
        elif kind == "jsonl":
            df.to_json(tmp, orient="records", lines=True)
        else:
            df.to_json(tmp, orient="records")
    return target


def dictionary_columns(table: pa.Table, max_ratio: float = 0.5) -> list[str]:
    """Columns worth Parquet dictionary encoding: fewer distinct values than
    ``max_ratio`` of the rows (classes, categories), judged on ``table`` (a first chunk).

    Parquet writers try a dictionary for every column by default and give it up only
    after the dictionary page overflows: for unique ids and float probabilities that
    costs time and gives a larger file (1M rows of id, class, probability: 0.31 s and
    15.8 MiB by default, 0.12 s and 11.9 MiB with only the class column encoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if len(col) == 0 or pa.types.is_nested(col.type):
            continue
        if pc.count_distinct(col).as_py() <= max_ratio * len(col):
            out.append(name)
    return out


def require_columns(df: pd.DataFrame, columns: Iterable[str | None], path: str | os.PathLike,
                    role: str = "column") -> None:
    """Raise one clear line when a named column is missing."""
    for col in columns:
        if col is not None and col not in df.columns:
            shown = ", ".join(map(str, list(df.columns)[:20]))
            raise DataError(f"{path}: {role} {col!r} not found (columns: {shown})")

"""Benchmark ``mlcd validate`` against a raw pyarrow read and plain pandera-on-pandas.

Target (issue): validating 10M rows x 20 columns takes at most 1.5x a raw pyarrow read
of the same Parquet file, with peak memory at most 2.5 GB, measured in the same run as
plain pandera-on-pandas (``schema.validate(pq.read_table(path).to_pandas(), lazy=True)``)
on the same schema.

Each measurement runs in its own child process; its peak RSS is the child's
``ru_maxrss`` (from ``os.wait4``), which counts pyarrow's allocations too (tracemalloc
does not). Times include reading the file in every case. Prints the ratios.

    python benchmarks/bench_validate.py                 # 10M rows (default)
    python benchmarks/bench_validate.py --rows 2000000  # quicker, for a shared machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_FLOAT, N_INT, N_CAT, N_TS = 12, 4, 3, 1      # 20 columns
CATEGORIES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
BAD_ROWS = 100                                   # out-of-range values in f0, to exercise failures


def generate(path: Path, rows: int, chunk: int = 1_000_000, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    done = 0
    tmp = path.with_suffix(".tmp")
    try:
        while done < rows:
            n = min(chunk, rows - done)
            cols = {}
            for i in range(N_FLOAT):
                values = rng.normal(50.0, 10.0, n).clip(0.0, 100.0)
                if i == 1:
                    values[rng.random(n) < 0.01] = np.nan            # nullable column
                cols[f"f{i}"] = values
            for i in range(N_INT):
                cols[f"i{i}"] = rng.integers(0, 1000, n, dtype=np.int64)
            for i in range(N_CAT):
                cols[f"c{i}"] = pa.array(np.array(CATEGORIES, dtype=object)[rng.integers(0, 8, n)],
                                         type=pa.string())
            start = np.datetime64("2024-01-01T00:00:00", "us")
            cols["t0"] = start + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]")
            if done == 0:
                cols["f0"][:BAD_ROWS] = 150.0                        # failures to report
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=256 * 1024)
            done += n
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)


def write_schema(path: Path) -> None:
    import pandera.pandas as pa

    columns = {}
    for i in range(N_FLOAT):
        columns[f"f{i}"] = pa.Column("float64", [pa.Check.greater_than_or_equal_to(0.0),
                                                 pa.Check.less_than_or_equal_to(100.0)],
                                     nullable=(i == 1))
    for i in range(N_INT):
        columns[f"i{i}"] = pa.Column("int64", [pa.Check.greater_than_or_equal_to(0),
                                               pa.Check.less_than_or_equal_to(999)])
    for i in range(N_CAT):
        columns[f"c{i}"] = pa.Column("str", pa.Check.isin(CATEGORIES))
    columns["t0"] = pa.Column("datetime64[us]", [
        pa.Check.greater_than_or_equal_to("2024-01-01 00:00:00"),
        pa.Check.less_than_or_equal_to("2025-01-01 00:00:00")])
    path.write_text(pa.DataFrameSchema(columns, coerce=False).to_yaml(), encoding="utf-8")


# --------------------------------------------------------------------------- children

def child(kind: str, data: str, schema: str) -> dict:
    os.environ["MLCD_PROGRESS"] = "0"
    # import everything first: the timings compare the work, not interpreter start-up
    import pandas  # noqa: F401
    import pandera.pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import mlcd_actions.data.schemas  # noqa: F401
    import mlcd_actions.stages.validate  # noqa: F401

    t0 = time.perf_counter()
    out: dict = {}
    if kind == "read":
        import pyarrow.parquet as pq

        table = pq.read_table(data)
        out["rows"] = table.num_rows
    elif kind == "pandas-read":
        import pyarrow.parquet as pq

        df = pq.read_table(data).to_pandas()
        out["rows"] = len(df)
    elif kind == "mlcd":
        from mlcd_actions.stages import validate

        result = validate.run(data, schema)
        out.update(rows=result.metrics["rows"], failures=result.metrics["failures"],
                   engine=result.details["engine"])
    elif kind == "pandera":
        import pandera.pandas as pa
        import pyarrow.parquet as pq
        from pandera.io import pandas_io

        sch = pandas_io.from_yaml(Path(schema))
        df = pq.read_table(data).to_pandas()
        try:
            sch.validate(df, lazy=True)
            out["failures"] = 0
        except pa.errors.SchemaErrors as exc:
            out["failures"] = int(len(exc.failure_cases))
        out["rows"] = len(df)
    else:
        raise SystemExit(f"unknown child {kind}")
    out["seconds"] = time.perf_counter() - t0
    return out


def measure(kind: str, data: Path, schema: Path) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, "--data", str(data),
                             "--schema", str(schema)], stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed with exit {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0          # Linux: KiB
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="runs per tool; best time, worst RSS")
    ap.add_argument("--workdir", default=None, help="where the data goes (default: a temp dir)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--schema", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.schema)))
        return

    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-validate-")
        work = Path(tmp.name)
    data = work / f"data-{args.rows}.parquet"
    schema = work / "schema.yaml"
    if not data.exists():
        t0 = time.perf_counter()
        generate(data, args.rows)
        print(f"generated {args.rows:,} rows x 20 columns in {time.perf_counter() - t0:.1f}s "
              f"({data.stat().st_size / 1e6:.0f} MB)")
    write_schema(schema)

    results: dict[str, dict] = {}
    for kind in ("read", "pandas-read", "mlcd", "pandera"):
        runs = [measure(kind, data, schema) for _ in range(max(1, args.repeat))]
        best = min(runs, key=lambda r: r["seconds"])
        best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        results[kind] = best
        extra = f", failures {best['failures']:,}" if "failures" in best else ""
        print(f"{kind:12s} {best['seconds']:7.2f}s  peak RSS {best['peak_rss_mb']:8.0f} MB{extra}")

    read, mlcd, pandera = results["read"], results["mlcd"], results["pandera"]
    if mlcd.get("failures") is not None and pandera.get("failures") is not None \
            and mlcd["failures"] != pandera["failures"]:
        print(f"WARNING: failure counts differ: mlcd {mlcd['failures']} vs pandera "
              f"{pandera['failures']}")
    print()
    print(f"rows: {args.rows:,}; engine: {mlcd.get('engine')}")
    print(f"mlcd validate / pyarrow read   time {mlcd['seconds'] / read['seconds']:.2f}x "
          "(target <= 1.5x)")
    print(f"pandera-pandas / pyarrow read  time {pandera['seconds'] / read['seconds']:.2f}x")
    print(f"mlcd validate / pandera-pandas time {mlcd['seconds'] / pandera['seconds']:.2f}x")
    print(f"peak RSS: mlcd {mlcd['peak_rss_mb']:.0f} MB, pandera-pandas "
          f"{pandera['peak_rss_mb']:.0f} MB, pyarrow read {read['peak_rss_mb']:.0f} MB; "
          f"mlcd / pandera {mlcd['peak_rss_mb'] / pandera['peak_rss_mb']:.2f}x "
          f"(target <= 2500 MB at 10M rows)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

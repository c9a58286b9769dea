"""Benchmark ``validate``, ``check-data`` and ``monitor``: the pandas engine against
``--engine spark`` in local mode, on the same generated Parquet data.

Each (stage, engine) runs in its own child process. Printed per run: the stage's wall
time (Spark: after the session is up; its start-up time is printed separately), rows per
second, and the peak memory of the whole process tree (the Python process, Spark's JVM
and its Python workers), sampled every 0.2 s. The ratio spark / pandas is printed per
stage. Not a test: nothing is asserted. Prints ``os.getloadavg()`` (the machine is
shared), so compare ratios from the same run.

    python benchmarks/bench_spark_stages.py                    # 10M rows
    python benchmarks/bench_spark_stages.py --rows 1000000     # a lighter run

Spark runs on ``--master`` (default ``local[2]``), UI off, a 3 GB driver. Existing data
in ``--workdir`` (``ref.parquet``, ``cur.parquet``, ``schema.yaml`` of the same
``--rows``) is reused instead of generated again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CITIES = ["Berlin", "Paris", "Madrid", "Rome", "Vienna", "Prague", "Lisbon", "Oslo"]
STAGES = ("validate", "check-data", "monitor")


def generate(path: Path, rows: int, *, shift: float = 0.0, seed: int = 7,
             chunk: int = 1_000_000) -> None:
    """rows x 9 columns: 4 floats, 1 int, 2 categories, a binary label, a text column
    where 1 row in 1000 holds an e-mail or a card number."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    writer = None
    done = 0
    try:
        while done < rows:
            n = min(chunk, rows - done)
            notes = np.array(["ok", "call back later", "no answer", "paid"], dtype=object)[
                rng.integers(0, 4, n)]
            pii = rng.random(n) < 0.001
            notes[pii] = np.where(rng.random(int(pii.sum())) < 0.5, "mail me: a.b@example.com",
                                  "card 4111 1111 1111 1111")
            cols = {f"f{i}": rng.normal(50.0 + shift * 10 * (i == 0), 10.0, n).clip(0, 100)
                    for i in range(4)}
            cols["i0"] = rng.integers(18, 90, n, dtype=np.int64)
            cols["city"] = pa.array(np.array(CITIES, dtype=object)[rng.integers(0, 8, n)],
                                    type=pa.string())
            cols["sex"] = pa.array(np.array(["F", "M"], dtype=object)[rng.integers(0, 2, n)],
                                   type=pa.string())
            cols["label"] = (rng.random(n) < 0.3).astype(np.int64)
            cols["notes"] = pa.array(notes, type=pa.string())
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

    columns = {f"f{i}": pa.Column("float64", pa.Check.in_range(0.0, 100.0)) for i in range(4)}
    columns["i0"] = pa.Column("int64", pa.Check.in_range(18, 80))      # fails ~12% of rows
    columns["city"] = pa.Column("str", pa.Check.isin(CITIES))
    columns["sex"] = pa.Column("str", pa.Check.isin(["F", "M"]))
    columns["label"] = pa.Column("int64", pa.Check.isin([0, 1]))
    columns["notes"] = pa.Column("str", nullable=True)
    path.write_text(pa.DataFrameSchema(columns).to_yaml(), encoding="utf-8")


# --------------------------------------------------------------------------- children

def child(stage: str, engine: str, work: Path, master: str) -> dict:
    os.environ["MLCD_PROGRESS"] = "0"
    import warnings

    warnings.filterwarnings("ignore")
    from mlcd_actions.stages import check_data, monitor, validate

    data, cur = str(work / "ref.parquet"), str(work / "cur.parquet")
    out: dict = {"stage": stage, "engine": engine}
    if engine == "spark":
        from mlcd_actions.data.spark import session

        t0 = time.perf_counter()
        session.start(session.Settings(master, {"spark.driver.memory": "3g",
                                                    "spark.ui.showConsoleProgress": "false"}),
                      "mlcd bench")
        out["session_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if stage == "validate":
        r = validate.run(data, str(work / "schema.yaml"), engine=engine)
        out["failures"] = r.metrics["failures"]
    elif stage == "check-data":
        r = check_data.run(data, label="label", sensitive=["sex", "city"], rules=["pci"],
                           engine=engine)
        out["findings"] = r.outputs["pii-findings"]
        out["reason"] = r.reason
    else:
        r = monitor.run(data, cur, engine=engine)
        out["drifted"] = r.outputs["drifted-features"]
        out["psi_f0"] = r.details["drift"]["f0"]["psi"]
    out["status"] = r.status
    out["seconds"] = time.perf_counter() - t0
    return out


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(stage: str, engine: str, work: Path, timeout: float, master: str) -> dict:
    err = tempfile.TemporaryFile(mode="w+")     # the child's stderr, shown if it fails
    proc = subprocess.Popen([sys.executable, __file__, "--child", stage, "--engine", engine,
                             "--workdir", str(work), "--master", master],
                            stdout=subprocess.PIPE, stderr=err, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SystemExit(f"{stage}/{engine}: no result within {timeout:.0f}s") from None
    finally:
        done.set()
        sampler.join()
    err.seek(0)
    tail = [ln for ln in err.read().splitlines() if ln.strip()][-5:]
    err.close()
    if proc.returncode != 0:
        raise SystemExit(f"{stage}/{engine} child failed with exit {proc.returncode}; its "
                         "stderr ends:\n" + "\n".join(tail))
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mb"] = peak[0] / 1e6
    return result


def _generated(work: Path, rows: int) -> bool:
    """``work`` holds this benchmark's data with ``rows`` rows per side."""
    paths = [work / "ref.parquet", work / "cur.parquet", work / "schema.yaml"]
    if not all(p.exists() for p in paths):
        return False
    import pyarrow.parquet as pq

    return all(pq.ParquetFile(p).metadata.num_rows == rows for p in paths[:2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--workdir", default=None, help="where the data goes (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per child, seconds")
    ap.add_argument("--master", default="local[2]", help="Spark master (default: local[2])")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--engine", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.engine, Path(args.workdir), args.master)))
        return

    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-spark-")
        work = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        if not _generated(work, args.rows):
            generate(work / "ref.parquet", args.rows)
            generate(work / "cur.parquet", args.rows, shift=0.5, seed=8)
            write_schema(work / "schema.yaml")
        size = (work / "ref.parquet").stat().st_size / 1e6
        print(f"data: 2 x {args.rows:,} rows x 9 columns ({size:.0f} MB each), ready in "
              f"{time.perf_counter() - t0:.1f}s; Spark on {args.master}; "
              f"load average {os.getloadavg()}")
        for stage in args.stages.split(","):
            runs = {}
            for engine in ("pandas", "spark"):
                r = runs[engine] = measure(stage, engine, work, args.timeout, args.master)
                rows = args.rows * (2 if stage == "monitor" else 1)
                start = (f", session start {r['session_seconds']:.1f}s"
                         if "session_seconds" in r else "")
                detail = {k: v for k, v in r.items() if k in ("failures", "findings", "drifted",
                                                              "psi_f0", "status")}
                print(f"{stage:10s} {engine:6s} {r['seconds']:8.1f}s "
                      f"{rows / r['seconds']:12,.0f} rows/s  peak {r['peak_mb']:7.0f} MB"
                      f"{start}  {detail}  load {os.getloadavg()[0]:.1f}")
            p, s = runs["pandas"], runs["spark"]
            print(f"{stage:10s} spark/pandas: time {s['seconds'] / p['seconds']:.2f}x, "
                  f"peak memory {s['peak_mb'] / p['peak_mb']:.2f}x")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()

"""Batch prediction benchmark: ``mlcd predict`` vs in-process and ``mlflow models predict``.

For each model of the matrix (``benchmarks/matrix.py``: scaler + logistic regression,
one-hot + HistGradientBoosting, one-hot + RandomForest, TF-IDF + a linear model, a
``python_function`` model that is not scikit-learn; all saved as ``mlcd train`` saves
them) and a generated Parquet input (plus the same rows as CSV for ``mlflow models
predict``, which reads CSV or JSON only), it runs in child processes and measures wall
time and peak memory (``ru_maxrss`` from ``os.wait4`` of each child):

1. in process: read the whole Parquet file with pandas, ``predict`` + ``predict_proba``
   (the same work ``mlcd predict`` does for a classifier), no output written;
2. ``mlcd predict --input in.parquet --output out.parquet`` (chunked, written);
3. ``mlflow models predict -i in.csv -t csv --env-manager local``;
4. with ``--large-rows N``, ``mlcd predict`` on N rows, for the memory ratio.

Prints one table, one row per model: times, the ratio mlflow / mlcd end to end (target
>= 5x), mlcd's time after the model is loaded over the in-process read + predict, peak
memory. Nothing is asserted.

    python benchmarks/bench_predict.py [--model all|logreg,hgb,rf,tfidf,pyfunc]
                                       [--rows 1000000] [--large-rows 0] [--skip-mlflow]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matrix

BIN = Path(sys.executable).parent

IN_PROCESS = """
import sys, time, warnings
warnings.simplefilter("ignore")
import pandas as pd
from mlcd_actions.models import loading as models
m = models.load(sys.argv[1])
t0 = time.perf_counter()
df = pd.read_parquet(sys.argv[2])
X = models.prepare_features(df, m.label, m)
p = m.predict(X)
q = m.predict_proba(X)
print(f"WORK {time.perf_counter() - t0:.4f}", file=sys.stderr)
"""


def make_data(name: str, path: Path, rows: int, csv: Path | None = None,
              chunk: int = 1_000_000) -> None:
    """``rows`` input rows of model ``name``, written 1M at a time (row groups of 1M rows),
    with a ``row_id`` column, optionally also as CSV."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    writer = csv_writer = None
    try:
        for k, start in enumerate(range(0, rows, chunk)):
            n = min(chunk, rows - start)
            df = matrix.inputs(name, n, seed=1 + k)
            df.insert(0, "row_id", np.arange(start, start + n, dtype=np.int64))
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
                if csv is not None:
                    csv_writer = pcsv.CSVWriter(csv, table.schema)
            writer.write_table(table)
            if csv_writer is not None:
                csv_writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
        if csv_writer is not None:
            csv_writer.close()


def child(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Run ``cmd``; ``(seconds, peak RSS in MiB, stderr tail)``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... exited {proc.returncode}:\n"
                           f"{err.decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024.0, err.decode(errors="replace")[-300:]


def bench_model(name: str, root: Path, env: dict, args) -> dict:
    model = matrix.build(name, root / name)
    small, small_csv = root / f"{name}.parquet", root / f"{name}.csv"
    t0 = time.perf_counter()
    make_data(name, small, args.rows, None if args.skip_mlflow else small_csv)
    out: dict = {"generate": time.perf_counter() - t0, "load": os.getloadavg()[0]}
    rep = root / f"rep-{name}"
    mlcd = [str(BIN / "mlcd"), "predict", "--model-uri", str(model), "--chunk-rows",
            str(args.chunk_rows), "--report-dir", str(rep)]
    if not args.skip_in_process:
        out["inproc"] = child([sys.executable, "-c", IN_PROCESS, str(model), str(small)], env)
    out["mlcd"] = child(mlcd + ["--input", str(small), "--output",
                                str(root / f"{name}-out.parquet")], env)
    out["mlcd_work"] = json.loads((rep / "predict.json").read_text())["metrics"]
    if args.large_rows:
        large = root / f"{name}-large.parquet"
        make_data(name, large, args.large_rows)
        out["large"] = child(mlcd + ["--input", str(large), "--output",
                                     str(root / f"{name}-big.parquet")], env)
        large.unlink()
    if not args.skip_mlflow:
        out["mlflow"] = child([str(BIN / "mlflow"), "models", "predict", "-m", str(model),
                               "-i", str(small_csv), "-o", str(root / f"{name}-mlflow.json"),
                               "-t", "csv", "--env-manager", "local"], env)
        small_csv.unlink()
    for f in root.glob(f"{name}*"):
        if f.is_file():
            f.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all",
                    help=f"models of the matrix, comma-separated: {', '.join(matrix.MODELS)} "
                         "or all (default)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--large-rows", type=int, default=0,
                    help="also predict this many rows with mlcd, for the memory ratio "
                         "(0: skip)")
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--skip-in-process", action="store_true",
                    help="leave out the in-process read + predict run")
    args = ap.parse_args()
    names = matrix.parse(args.model)
    root = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLCD_PROGRESS": "0", "PYTHONWARNINGS": "ignore", **matrix.ENV}
    results = {}
    try:
        print(f"load average at start (2 cores, shared machine): "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{args.rows:,} rows per model; mlcd predict --chunk-rows {args.chunk_rows:,} "
              "(Parquet in and out); mlflow models predict -t csv --env-manager local")
        print(f"{'model':<8}{'run':<34}{'rows':>12}{'seconds':>10}{'peak MiB':>10}"
              f"{'rows/s':>12}")
        for name in names:
            r = results[name] = bench_model(name, root, env, args)
            runs = [("in process: read + predict + proba", args.rows, r["inproc"])] \
                if "inproc" in r else []
            runs.append(("mlcd predict", args.rows, r["mlcd"]))
            if "large" in r:
                runs.append(("mlcd predict (large)", args.large_rows, r["large"]))
            if "mlflow" in r:
                runs.append(("mlflow models predict (csv)", args.rows, r["mlflow"]))
            for run, n, (sec, mib, _) in runs:
                print(f"{name:<8}{run:<34}{n:>12,}{sec:>10.2f}{mib:>10.0f}{n / sec:>12,.0f}",
                      flush=True)
        print()
        print("targets: mlcd predict >= 5x faster than mlflow models predict end to end")
        print("| model | mlcd predict s | mlflow models predict s | mlflow / mlcd | "
              "mlcd after load / in process | peak MiB mlcd / mlflow | load |")
        print("|---|---|---|---|---|---|---|")
        for name in names:
            r = results[name]
            ours, work = r["mlcd"], r["mlcd_work"]
            work_in = float(r["inproc"][2].split("WORK")[-1].split()[0]) \
                if "inproc" in r else None
            theirs = r.get("mlflow")
            print(f"| {matrix.ENTRIES[name].title} | {ours[0]:.2f} | "
                  + (f"{theirs[0]:.2f} | {theirs[0] / ours[0]:.1f}x | " if theirs else
                     "- | - | ")
                  + (f"{work['seconds'] / work_in:.2f}x" if work_in else "-")
                  + f" | {ours[1]:.0f} / "
                  + (f"{theirs[1]:.0f}" if theirs else "-") + f" | {r['load']:.1f} |")
            if "large" in r:
                print(f"  {name}: peak memory {args.large_rows:,} / {args.rows:,} rows: "
                      f"{r['large'][1] / ours[1]:.2f}x (target <= 1.2x)")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

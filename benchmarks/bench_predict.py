"""Batch prediction benchmark: ``mlcd predict`` vs in-process and ``mlflow models predict``.

For each model of the matrix (``benchmarks/matrix.py``: scaler + logistic regression,
one-hot + HistGradientBoosting, one-hot + RandomForest, TF-IDF + a linear model, a
``python_function`` model that is not scikit-learn; all saved as ``mlcd train`` saves
them) and a generated Parquet input (plus the same rows as CSV for ``mlflow models
predict``, which reads CSV or JSON only), it runs in child processes and measures wall
time and peak memory (``ru_maxrss`` from ``os.wait4`` of each child):

1. in process, default thread pools as ``mlflow models predict`` has: read the whole
   Parquet file with pandas, ``predict`` (timed alone, wall and CPU: the model call
   ``mlflow models predict`` makes) and ``predict_proba`` (the same work ``mlcd predict``
   does for a classifier), no output;
2. ``mlcd predict --input in.csv --output out.parquet``: the same CSV file mlflow reads
   (chunked, over ``--workers`` processes, written); the ratio is taken on this run;
3. ``mlcd predict --input in.parquet --output out.parquet``;
4. ``mlflow models predict -i in.csv -t csv --env-manager local``; its predictions are
   compared with mlcd's ``prediction`` column (rows that differ are printed);
5. with ``--large-rows N``, ``mlcd predict`` on N rows, for the memory ratio.

Prints one table, one row per model: times, the ratio mlflow / mlcd end to end on the
same CSV file (target >= 5x), where mlcd's time goes (process start and imports, model
load, read + predict + write), CPU seconds of both (user + system, workers included:
less inflated than wall time on a loaded machine), the share of mlflow's CPU that is the
model call itself, peak memory. Nothing is asserted.

    python benchmarks/bench_predict.py [--model all|logreg,hgb,rf,tfidf,pyfunc]
                                       [--rows 1000000] [--large-rows 0] [--skip-mlflow]
                                       [--workers N]
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
w0, c0 = time.perf_counter(), time.process_time()
df = pd.read_parquet(sys.argv[2])
X = models.prepare_features(df, m.label, m)
w1, c1 = time.perf_counter(), time.process_time()
p = m.predict(X)
w2, c2 = time.perf_counter(), time.process_time()
q = m.predict_proba(X)
w3, c3 = time.perf_counter(), time.process_time()
print(f"WORK {w3 - w0:.4f} READ {w1 - w0:.4f} PREDICT {w2 - w1:.4f} PROBA {w3 - w2:.4f} "
      f"PREDICT_CPU {c2 - c1:.4f}", file=sys.stderr)
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


def child(cmd: list[str], env: dict) -> tuple[float, float, str, float]:
    """Run ``cmd``; ``(seconds, peak RSS in MiB, stderr tail, CPU seconds)``: user + system
    time of the child and the processes it waited for (its workers), which a loaded
    machine inflates far less than wall time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... exited {proc.returncode}:\n"
                           f"{err.decode(errors='replace')[-2000:]}")
    return (seconds, usage.ru_maxrss / 1024.0, err.decode(errors="replace")[-300:],
            usage.ru_utime + usage.ru_stime)


def bench_model(name: str, root: Path, env: dict, args) -> dict:
    model = matrix.build(name, root / name)
    small, small_csv = root / f"{name}.parquet", root / f"{name}.csv"
    t0 = time.perf_counter()
    make_data(name, small, args.rows, small_csv)
    out: dict = {"generate": time.perf_counter() - t0, "load": os.getloadavg()[0]}
    rep = root / f"rep-{name}"
    mlcd = [str(BIN / "mlcd"), "predict", "--model-uri", str(model), "--chunk-rows",
            str(args.chunk_rows), "--report-dir", str(rep)]
    if args.workers:
        mlcd += ["--workers", str(args.workers)]
    if not args.skip_in_process:
        out["inproc"] = child([sys.executable, "-c", IN_PROCESS, str(model), str(small)], env)
    out["mlcd"] = child(mlcd + ["--input", str(small_csv), "--output",
                                str(root / f"{name}-out.parquet")], env)
    report = json.loads((rep / "predict.json").read_text())
    out["mlcd_work"] = {**report["metrics"], "workers": report["details"].get("workers")}
    out["mlcd_pq"] = child(mlcd + ["--input", str(small), "--output",
                                   str(root / f"{name}-outpq.parquet")], env)
    if args.large_rows:
        large = root / f"{name}-large.parquet"
        make_data(name, large, args.large_rows)
        out["large"] = child(mlcd + ["--input", str(large), "--output",
                                     str(root / f"{name}-big.parquet")], env)
        large.unlink()
    if not args.skip_mlflow:
        theirs = root / f"{name}-mlflow.json"
        out["mlflow"] = child([str(BIN / "mlflow"), "models", "predict", "-m", str(model),
                               "-i", str(small_csv), "-o", str(theirs),
                               "-t", "csv", "--env-manager", "local"], env)
        out["differ"] = _differing(root / f"{name}-out.parquet", theirs)
    for f in root.glob(f"{name}*"):
        if f.is_file():
            f.unlink()
    return out


def _differing(ours: Path, theirs: Path) -> int:
    """Rows whose ``prediction`` differs from mlflow's (the same CSV file, in order)."""
    import numpy as np
    import pyarrow.parquet as pq

    mine = pq.read_table(ours, columns=["prediction"]).column(0).to_numpy()
    data = json.loads(theirs.read_text())
    other = np.asarray(data["predictions"] if isinstance(data, dict) else data)
    if other.ndim > 1:  # a column of a frame
        other = other[:, 0]
    if len(other) != len(mine):
        return max(len(other), len(mine))
    return int((mine != other.astype(mine.dtype)).sum())


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
    ap.add_argument("--workers", type=int, default=0,
                    help="mlcd predict --workers (0: mlcd's default, one per usable CPU)")
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
              "(CSV or Parquet in, Parquet out); mlflow models predict -t csv "
              "--env-manager local (the same CSV file)")
        print(f"{'model':<8}{'run':<36}{'rows':>12}{'seconds':>10}{'CPU s':>8}"
              f"{'peak MiB':>10}{'rows/s':>12}")
        for name in names:
            results[name] = bench_model(name, root, env, args)
            _print_runs(name, results[name], args)
        print()
        _print_table(names, results)
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _print_runs(name: str, r: dict, args) -> None:
    runs = [("in process: read + predict + proba", args.rows, r["inproc"])] \
        if "inproc" in r else []
    runs.append(("mlcd predict (csv)", args.rows, r["mlcd"]))
    runs.append(("mlcd predict (parquet)", args.rows, r["mlcd_pq"]))
    if "large" in r:
        runs.append(("mlcd predict (large, parquet)", args.large_rows, r["large"]))
    if "mlflow" in r:
        runs.append(("mlflow models predict (csv)", args.rows, r["mlflow"]))
    for run, n, (sec, mib, _, cpu) in runs:
        print(f"{name:<8}{run:<36}{n:>12,}{sec:>10.2f}{cpu:>8.1f}{mib:>10.0f}"
              f"{n / sec:>12,.0f}", flush=True)
    if "inproc" in r:
        print(f"{name:<8}in process: {r['inproc'][2].strip().splitlines()[-1]}")
    if "large" in r:
        print(f"{name:<8}peak memory {args.large_rows:,} / {args.rows:,} rows: "
              f"{r['large'][1] / r['mlcd_pq'][1]:.2f}x (target <= 1.2x)")


def _print_table(names: list[str], results: dict) -> None:
    print("target: mlcd predict >= 5x faster than mlflow models predict end to end, same "
          "CSV file")
    print("| model | mlcd s (csv / parquet) | mlflow s | mlflow / mlcd | CPU s mlcd / mlflow "
          "| mlcd: start + imports / model load / read + predict + write s (workers) | "
          "model call CPU s (share of mlflow's CPU) | predictions differing | peak MiB mlcd / mlflow "
          "| load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        r = results[name]
        ours, work = r["mlcd"], r["mlcd_work"]
        start = ours[0] - work["load_seconds"] - work["seconds"]
        phases = (f"{start:.1f} / {work['load_seconds']:.1f} / {work['seconds']:.1f} "
                  f"({work['workers']})")
        call = "-"
        if "inproc" in r:
            predict_cpu = float(r["inproc"][2].split("PREDICT_CPU")[-1].split()[0])
            share = f" ({100 * predict_cpu / r['mlflow'][3]:.0f}%)" if "mlflow" in r else ""
            call = f"{predict_cpu:.1f}{share}"
        theirs = r.get("mlflow")
        print(f"| {name} | {ours[0]:.2f} / {r['mlcd_pq'][0]:.2f} | "
              + (f"{theirs[0]:.2f} | **{theirs[0] / ours[0]:.1f}x** | {ours[3]:.1f} / "
                 f"{theirs[3]:.1f} | " if theirs else "- | - | - | ")
              + f"{phases} | {call} | {r.get('differ', '-')} | {ours[1]:.0f} / "
              + (f"{theirs[1]:.0f}" if theirs else "-") + f" | {r['load']:.1f} |")


if __name__ == "__main__":
    main()

"""Batch prediction benchmark: ``mlcd predict`` vs in-process and ``mlflow models predict``.

For one scikit-learn model (scaler + logistic regression on 6 numeric features) and a
generated Parquet input (plus the same rows as CSV for ``mlflow models predict``, which
reads CSV or JSON only), it runs in child processes and measures wall time and peak
memory (``ru_maxrss`` from ``os.wait4`` of each child):

1. in process: read the whole Parquet file with pandas, ``predict`` + ``predict_proba``
   (the same work ``mlcd predict`` does for a classifier), no output written;
2. ``mlcd predict --input in.parquet --output out.parquet`` (chunked, written);
3. ``mlflow models predict -i in.csv -t csv --env-manager local`` (1M rows only);
4. ``mlcd predict`` on the large input, for the memory ratio.

Prints times, peak memory and ratios (targets: mlcd <= 1.5x in process, >= 5x faster
than mlflow, peak memory large/1M <= 1.2). The in-process ratio is given twice: for the
work after the model is loaded (the in-process child times its read + predict; mlcd's
report has ``seconds`` and ``load_seconds``), and end to end. Nothing is asserted.

    python benchmarks/bench_predict.py [--rows 1000000] [--large-rows 10000000] [--skip-mlflow]
                                       [--format skops|cloudpickle|pickle]
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

BIN = Path(sys.executable).parent
FEATURES = [f"f{i}" for i in range(6)]

IN_PROCESS = """
import sys, time, warnings
warnings.simplefilter("ignore")
import pandas as pd
from mlcd_actions.models import loading as models
m = models.load(sys.argv[1])
t0 = time.perf_counter()
df = pd.read_parquet(sys.argv[2])
X = models.prepare_features(df, m.label, m)
p = m.predict(X); q = m.predict_proba(X)
print(f"WORK {time.perf_counter() - t0:.4f}", file=sys.stderr)
"""


def make_model(root: Path, fmt: str = "skops") -> Path:
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.sklearn import save_model
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, 6)), columns=FEATURES)
    y = (X.f0 + X.f1 - X.f2 > 0).astype(int)
    path = root / "model"
    save_model(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), str(path),
               signature=infer_signature(X, y), pip_requirements=["scikit-learn"],
               serialization_format=fmt)
    return path


def make_data(path: Path, rows: int, csv: Path | None = None, chunk: int = 1_000_000) -> None:
    """``rows`` rows written 1M at a time (row groups of 1M rows), optionally also CSV."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    writer = csv_writer = None
    try:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cols = {"row_id": np.arange(start, start + n, dtype=np.int64)}
            cols.update({f: rng.normal(size=n).round(6) for f in FEATURES})
            table = pa.table(cols)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--large-rows", type=int, default=10_000_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--format", default="skops", choices=["skops", "cloudpickle", "pickle"],
                    help="how the model is saved: skops (MLflow's default) or cloudpickle "
                         "(mlcd train's default)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLCD_PROGRESS": "0", "PYTHONWARNINGS": "ignore"}
    try:
        model = make_model(root, args.format)
        small, small_csv, large = root / "in.parquet", root / "in.csv", root / "large.parquet"
        t0 = time.perf_counter()
        make_data(small, args.rows, None if args.skip_mlflow else small_csv)
        make_data(large, args.large_rows)
        print(f"load average (2 cores, shared machine): {os.getloadavg()[0]:.1f}")
        print(f"model: scaler + logistic regression saved as {args.format}; "
              f"data: {args.rows:,} and {args.large_rows:,} rows, 6 features + id "
              f"({time.perf_counter() - t0:.1f}s to generate)")
        mlcd = [str(BIN / "mlcd"), "predict", "--model-uri", str(model), "--chunk-rows",
                str(args.chunk_rows), "--report-dir", str(root / "rep")]
        inproc = child([sys.executable, "-c", IN_PROCESS, str(model), str(small)], env)
        ours = child(mlcd + ["--input", str(small), "--output", str(root / "out.parquet")], env)
        ours_work = json.loads((root / "rep" / "predict.json").read_text())["metrics"]
        big = child(mlcd + ["--input", str(large), "--output", str(root / "big.parquet")], env)
        rows = [("in process: read + predict + proba", args.rows, inproc),
                ("mlcd predict", args.rows, ours),
                ("mlcd predict (large)", args.large_rows, big)]
        theirs = None
        if not args.skip_mlflow:
            theirs = child([str(BIN / "mlflow"), "models", "predict", "-m", str(model), "-i",
                            str(small_csv), "-o", str(root / "mlflow.json"), "-t", "csv",
                            "--env-manager", "local"], env)
            rows.append(("mlflow models predict (csv)", args.rows, theirs))
        print(f"{'run':<38}{'rows':>12}{'seconds':>10}{'peak MiB':>10}{'rows/s':>12}")
        for name, n, (sec, mib, _) in rows:
            print(f"{name:<38}{n:>12,}{sec:>10.2f}{mib:>10.0f}{n / sec:>12,.0f}")
        work_in = float(inproc[2].split("WORK")[-1].split()[0])
        print(f"after the model is loaded: in process read + predict {work_in:.2f}s; "
              f"mlcd predict read + predict + write {ours_work['seconds']:.2f}s "
              f"(model load {ours_work['load_seconds']:.2f}s) -> "
              f"{ours_work['seconds'] / work_in:.2f}x (target <= 1.5x)")
        print(f"end to end (process start, imports, model load included): mlcd / in process "
              f"{ours[0] / inproc[0]:.2f}x")
        if theirs is not None:
            print(f"mlflow / mlcd time: {theirs[0] / ours[0]:.1f}x faster (target >= 5x); "
                  f"peak memory mlflow {theirs[1]:.0f} MiB vs mlcd {ours[1]:.0f} MiB")
        print(f"peak memory {args.large_rows:,} / {args.rows:,} rows: {big[1] / ours[1]:.2f}x "
              "(target <= 1.2x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

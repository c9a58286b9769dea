"""Drift benchmark: mlcd's drift engine vs Evidently's DataDriftPreset on the same data.

    .venv/bin/python benchmarks/bench_drift.py [--rows 200000 1000000] [--numeric 20]
        [--categorical 5] [--skip-evidently-above N]

Data: reference and current tables of ROWS rows × 20 numeric + 5 categorical columns
(current: a mean shift on 3 numeric columns and a new category on 1 categorical), written
once to Parquet. Each tool runs in its own child process, which reads the Parquet files and
computes per-column drift; the child reports its peak RSS (``ru_maxrss``) and two times:
``total`` (process start to result: imports, reading, computing) and ``compute`` (after
the imports; for mlcd this still includes reading the Parquet files, which it streams
column by column; for Evidently it starts after ``pd.read_parquet``), plus its CPU seconds
(user + system: less moved by other jobs on a shared machine than wall time). Evidently 0.7 does not import with pandas 3, so it
runs from its own venv, ``.tools/evidently-venv`` (``pip install evidently 'pandas<3'``),
created here when absent.

What each computes (defaults, as a user would run them):
* mlcd: numeric PSI (quantile bins) + exact Kolmogorov–Smirnov statistic and p-value;
  categorical chi-square, Jensen–Shannon, L-infinity, new/missing categories.
* Evidently DataDriftPreset: picks per column by size — above 1000 rows, normed Wasserstein
  distance for numeric and Jensen–Shannon for categorical columns (KS/chi-square below).
Targets: >= 50x faster than Evidently and <= 3 s at 1M rows, <= 1.5 GB peak RSS. Prints
times, peaks, ratios and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = ROOT / ".tools" / "evidently-venv"

MLCD_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    t0 = time.perf_counter()
    import numpy, pyarrow.parquet, scipy.special  # noqa: F401 - imports not timed
    from mlcd_actions.data import drift
    ref, cur = sys.argv[1], sys.argv[2]
    cats = json.loads(sys.argv[3])
    t1 = time.perf_counter()
    res = drift.compare(ref, cur, categorical=cats)
    t2 = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"total_s": t2 - t0, "compute_s": t2 - t1,
                      "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024,
                      "drifted": drift.drifted(res), "columns": len(res)}))
""")

EVIDENTLY_CHILD = textwrap.dedent("""
    import json, resource, sys, time, warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
    cats = json.loads(sys.argv[3])
    nums = [c for c in ref.columns if c not in cats]
    t1 = time.perf_counter()
    dd = DataDefinition(numerical_columns=nums, categorical_columns=cats)
    r = Dataset.from_pandas(ref, data_definition=dd)
    c = Dataset.from_pandas(cur, data_definition=dd)
    snap = Report([DataDriftPreset()]).run(current_data=c, reference_data=r)
    out = snap.dict()
    t2 = time.perf_counter()
    drifted = []
    for m in out.get("metrics", []):
        name = str(m.get("metric_name") or m.get("metric_id") or "")
        val = m.get("value")
        if name.startswith("ValueDrift") and isinstance(val, (int, float)):
            col = name.split("column=")[1].split(",")[0].rstrip(")") if "column=" in name else name
            thr = 0.1
            if val >= thr:
                drifted.append(col)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"total_s": t2 - t0, "compute_s": t2 - t1,
                      "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024,
                      "drifted": drifted, "columns": len(ref.columns)}))
""")


def make_data(rows: int, numeric: int, categorical: int, directory: Path) -> tuple[Path, Path,
                                                                                    list[str]]:
    import numpy as np
    import pandas as pd

    ref_path = directory / f"ref_{rows}.parquet"
    cur_path = directory / f"cur_{rows}.parquet"
    cats = [f"cat{j}" for j in range(categorical)]
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path, cats
    for path, seed, shift in ((ref_path, 1, False), (cur_path, 2, True)):
        r = np.random.default_rng(seed)
        cols = {}
        for i in range(numeric):
            x = r.normal(i, 1 + i % 3, rows)
            if shift and i < 3:
                x = x + 0.5 * (1 + i % 3)
            cols[f"num{i}"] = x
        levels = np.array([f"level_{k}" for k in range(12)])
        for j, name in enumerate(cats):
            codes = r.integers(0, 12 if not (shift and j == 0) else 13, rows)
            values = np.where(codes == 12, "brand_new", levels[np.minimum(codes, 11)])
            cols[name] = pd.Categorical(values) if j % 2 else values
        pd.DataFrame(cols).to_parquet(path, index=False, row_group_size=128_000)
    return ref_path, cur_path, cats


def ensure_evidently() -> Path:
    py = EVIDENTLY_VENV / "bin" / "python"
    if py.exists():
        probe = subprocess.run([str(py), "-c", "import evidently, pandas"], capture_output=True)
        if probe.returncode == 0:
            return py
    print(f"creating {EVIDENTLY_VENV} (pip install evidently 'pandas<3') ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "evidently", "pandas<3", "pyarrow"],
                   check=True)
    return py


def child(python: str, code: str, ref: Path, cur: Path, cats: list[str], timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", code, str(ref), str(cur), json.dumps(cats)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--numeric", type=int, default=20)
    ap.add_argument("--categorical", type=int, default=5)
    ap.add_argument("--skip-evidently-above", type=int, default=None,
                    help="Do not run Evidently above this many rows (shared machine).")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()

    ev_py = ensure_evidently()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mlcd-bench-drift-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"data in {data_dir}; {args.numeric} numeric + {args.categorical} categorical columns;"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows_out = []
    for rows in args.rows:
        ref, cur, cats = make_data(rows, args.numeric, args.categorical, data_dir)
        mine = child(sys.executable, MLCD_CHILD, ref, cur, cats, args.timeout)
        print(f"[{rows:>9,} rows] mlcd      : {mine['total_s']:7.2f} s total "
              f"({mine['compute_s']:.2f} s compute, {mine['cpu_s']:.2f} s CPU), "
              f"peak {mine['peak_mb']:7.0f} MB, "
              f"drifted {sorted(mine['drifted'])}", flush=True)
        theirs = None
        if args.skip_evidently_above is None or rows <= args.skip_evidently_above:
            theirs = child(str(ev_py), EVIDENTLY_CHILD, ref, cur, cats, args.timeout)
            print(f"[{rows:>9,} rows] evidently : {theirs['total_s']:7.2f} s total "
                  f"({theirs['compute_s']:.2f} s compute, {theirs['cpu_s']:.2f} s CPU), "
                  f"peak {theirs['peak_mb']:7.0f} MB, "
                  f"drifted {sorted(theirs['drifted'])}", flush=True)
            print(f"[{rows:>9,} rows] speed-up  : {theirs['total_s'] / mine['total_s']:6.1f}x "
                  f"total, {theirs['compute_s'] / mine['compute_s']:6.1f}x compute; "
                  f"memory ratio {theirs['peak_mb'] / mine['peak_mb']:.1f}x "
                  f"(mlcd {'meets' if mine['peak_mb'] <= 1536 else 'MISSES'} the 1.5 GB cap)",
                  flush=True)
        else:
            print(f"[{rows:>9,} rows] evidently : skipped (--skip-evidently-above)")
        rows_out.append({"rows": rows, "mlcd": mine, "evidently": theirs,
                         "load": round(os.getloadavg()[0], 1)})
        print(f"[{rows:>9,} rows] load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
              "cores (times scale with contention; the ratio is what compares)", flush=True)
    print(json.dumps(rows_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

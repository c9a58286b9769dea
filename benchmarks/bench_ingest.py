"""Benchmark: `mlcd ingest` (streamed pyarrow -> Parquet) against the peer a user would write
(pandas.read_csv + DataFrame.to_parquet), each in a fresh process, best of N runs.
Prints time and peak RSS of each, and the ratios (mlcd / peer)."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
# VmHWM (peak resident set) of this process: unlike ru_maxrss it is not inherited over exec
WRAP = ("import sys, time, atexit; t0 = time.monotonic(); "
        "hwm = lambda: int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
        ".split()[1]) / 1024; "
        "atexit.register(lambda: print('BENCH', time.monotonic() - t0, hwm(), file=sys.stderr)); ")

def run(code: str) -> tuple[float, float]:
    p = subprocess.run([sys.executable, "-c", WRAP + code], capture_output=True, text=True,
                       env={**os.environ, "MLCD_PROGRESS": "0"})
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("BENCH")][-1]
    _, t, mb = line.split()
    return float(t), float(mb)

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    csv = tmp / "big.csv"
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    pd.DataFrame({"id": np.arange(ROWS), "x": rng.normal(size=ROWS),
                  "y": rng.integers(0, 1000, ROWS),
                  "cat": rng.choice(["alpha", "beta", "gamma", "delta"], ROWS),
                  "text": rng.choice(["lorem ipsum dolor", "sit amet", "consectetur"], ROWS),
                  "flag": rng.random(ROWS) > 0.5}).to_csv(csv, index=False)
    size = csv.stat().st_size / 1e6
    mlcd = (f"from mlcd_actions.cli import main; main(['ingest', {str(csv)!r}, '--out', "
            f"{str(tmp / 'snap')!r}, '--report-dir', {str(tmp / 'r')!r}])")
    peer = (f"import pandas as pd; pd.read_csv({str(csv)!r}).to_parquet("
            f"{str(tmp / 'peer.parquet')!r}, index=False)")
    res = {"mlcd": [], "peer": []}
    for _ in range(REPEAT):
        res["mlcd"].append(run(mlcd))
        res["peer"].append(run(peer))
    (t_m, m_m), (t_p, m_p) = min(res["mlcd"]), min(res["peer"])
    m_m, m_p = min(m for _, m in res["mlcd"]), min(m for _, m in res["peer"])
    print(f"ingest benchmark: {ROWS:,} rows x 6 columns, CSV {size:.0f} MB, best of {REPEAT}")
    print(f"  mlcd ingest (CLI, whole process)  : {t_m:6.2f} s   peak RSS {m_m:6.0f} MB")
    print(f"  pandas read_csv + to_parquet      : {t_p:6.2f} s   peak RSS {m_p:6.0f} MB")
    print(f"  ratio time mlcd/pandas: {t_m / t_p:.2f}   ratio peak memory mlcd/pandas: "
          f"{m_m / m_p:.2f}")

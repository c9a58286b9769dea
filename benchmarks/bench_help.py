"""`mlcd --help` start-up time versus a peer CLI (`mlflow --version`), in the same run.

Target (issue 2): `mlcd --help` <= 0.25 s. Prints medians and the ratio.
Usage: python benchmarks/bench_help.py [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    mlcd = shutil.which("mlcd", path=str(BIN)) or "mlcd"
    mlflow = shutil.which("mlflow", path=str(BIN)) or "mlflow"
    rows = [
        ("mlcd --help", timed([mlcd, "--help"], args.runs)),
        ("mlcd validate --help", timed([mlcd, "validate", "--help"], args.runs)),
        ("mlcd train --help", timed([mlcd, "train", "--help"], args.runs)),
    ]
    peer = timed([mlflow, "--version"], max(2, args.runs // 3))
    print(f"{'command':28} {'median s':>9} {'vs mlflow --version':>20}")
    for name, t in rows:
        print(f"{name:28} {t:9.3f} {peer / t:19.1f}x faster")
    print(f"{'mlflow --version (peer)':28} {peer:9.3f}")
    target = 0.25
    print(f"target mlcd --help <= {target} s: {'met' if rows[0][1] <= target else 'MISSED'}")


if __name__ == "__main__":
    main()

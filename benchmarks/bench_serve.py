"""Online serving benchmark: ``mlcd serve`` vs ``mlflow models serve`` on the same model.

Starts both servers on loopback ports for one small scikit-learn model (a scaler +
logistic regression on 6 numeric features, saved with an MLflow signature), drives
single-row POST requests with a bounded Python client (threads, one keep-alive
``http.client`` connection each) at concurrency 1 and 8 for a fixed number of requests,
and prints req/s, p50/p99 latency and the ratios. Nothing is asserted.

    python benchmarks/bench_serve.py [--requests 3000] [--mlflow-requests 400] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_model(root: Path) -> tuple[Path, list[dict]]:
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.sklearn import save_model
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, 6)), columns=[f"f{i}" for i in range(6)])
    y = (X.f0 + X.f1 - X.f2 > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    path = root / "model"
    save_model(model, str(path), signature=infer_signature(X, y),
               pip_requirements=["scikit-learn"])
    rows = X.head(200).round(6).to_dict(orient="records")
    return path, rows


def wait_healthy(port: int, path: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"server on port {port} not healthy after {timeout}s")


def drive(port: int, path: str, bodies: list[bytes], total: int, concurrency: int) -> dict:
    """Send ``total`` single-row requests over ``concurrency`` keep-alive connections."""
    per = total // concurrency
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    barrier = threading.Barrier(concurrency + 1)

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        out = latencies[k]
        barrier.wait()
        for i in range(per):
            body = bodies[(k * per + i) % len(bodies)]
            t0 = time.perf_counter()
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t0)
            if resp.status != 200:
                errors[k] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat = sorted(x for xs in latencies for x in xs)
    return {"rps": len(lat) / elapsed, "p50": statistics.median(lat) * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "n": len(lat),
            "errors": sum(errors)}


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    fh = open(log, "wb")  # noqa: SIM115 - closed when the process ends
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000, help="per run, mlcd serve")
    ap.add_argument("--mlflow-requests", type=int, default=400, help="per run, mlflow")
    ap.add_argument("--workers", type=int, default=2, help="mlcd serve --workers")
    ap.add_argument("--no-proba", action="store_true",
                    help="ask mlcd for predictions only (/predict?probabilities=false), "
                         "the same work mlflow does")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLCD_PROGRESS": "0"}
    procs = []
    try:
        model, rows = make_model(root)
        bodies_mlcd = [json.dumps([r]).encode() for r in rows]
        bodies_mlflow = [json.dumps({"dataframe_records": [r]}).encode() for r in rows]
        p_mlcd, p_mlflow = free_port(), free_port()
        mlcd = start([str(BIN / "mlcd"), "serve", "--model-uri", str(model), "--port",
                      str(p_mlcd), "--workers", str(args.workers), "--log-level", "warning",
                      "--report-dir", str(root / "rep")], env, root / "mlcd.log")
        procs.append(mlcd)
        mlflow = start([str(BIN / "mlflow"), "models", "serve", "-m", str(model), "-h",
                        "127.0.0.1", "-p", str(p_mlflow), "--env-manager", "local"], env,
                       root / "mlflow.log")
        procs.append(mlflow)
        wait_healthy(p_mlcd, "/health", mlcd)
        wait_healthy(p_mlflow, "/health", mlflow)
        predict_path = "/predict?probabilities=false" if args.no_proba else "/predict"
        # warm up both
        drive(p_mlcd, predict_path, bodies_mlcd, 200, 2)
        drive(p_mlflow, "/invocations", bodies_mlflow, 40, 2)
        print(f"load average (2 cores, shared machine): {os.getloadavg()[0]:.1f}")
        print(f"model: scaler + logistic regression, 6 features; single-row requests; "
              f"mlcd serve --workers {args.workers} (POST {predict_path}); mlflow models serve --env-manager local")
        print(f"{'server':<22}{'c':>3}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'errors':>8}")
        results = {}
        for c in (1, 8):
            a = drive(p_mlcd, predict_path, bodies_mlcd, args.requests, c)
            b = drive(p_mlflow, "/invocations", bodies_mlflow, args.mlflow_requests, c)
            results[c] = (a, b)
            for name, r in (("mlcd serve", a), ("mlflow models serve", b)):
                print(f"{name:<22}{c:>3}{r['n']:>10}{r['rps']:>10.1f}{r['p50']:>9.2f}"
                      f"{r['p99']:>9.2f}{r['errors']:>8}")
        for c, (a, b) in results.items():
            print(f"c={c}: throughput ratio mlcd/mlflow = {a['rps'] / b['rps']:.1f}x "
                  f"(target >= 10x); p99 mlcd {a['p99']:.1f} ms vs mlflow {b['p99']:.1f} ms"
                  + (" (target p99 <= 20 ms)" if c == 8 else ""))
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Online serving benchmark: ``mlcd serve`` vs ``mlflow models serve`` on the same model.

For each model of the matrix (``benchmarks/matrix.py``: scaler + logistic regression,
one-hot + HistGradientBoosting, one-hot + RandomForest, TF-IDF + a linear model, a
``python_function`` model that is not scikit-learn; all saved as ``mlcd train`` saves
them) starts both servers on loopback ports, drives
single-row POST requests with a bounded Python client (threads, one keep-alive
``http.client`` connection each) at concurrency 1 and 8 for a fixed number of requests,
and prints req/s, p50/p99 latency, then one table with one row (ratios) per model,
with the requests ``mlcd serve`` answered per model call at concurrency 8 (from each
worker's ``/metadata`` counters: how much micro-batching gathered). Nothing is asserted.

    python benchmarks/bench_serve.py [--model all|logreg,hgb,rf,tfidf,pyfunc]
                                     [--requests 3000] [--mlflow-requests 400] [--workers N]
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

import matrix

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def worker_counters(port: int, workers: int, attempts: int = 60) -> tuple[int, int]:
    """``(requests, model calls)`` summed over the ``workers`` mlcd workers, read from
    ``/metadata`` (each fresh connection lands on one worker; ``attempts`` bounds the
    search)."""
    seen: dict[int, tuple[int, int]] = {}
    for _ in range(attempts):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/metadata")
            worker = json.loads(conn.getresponse().read())["worker"]
        finally:
            conn.close()
        seen[worker["pid"]] = (worker["requests"], worker["model_calls"])
        if len(seen) >= workers:
            break
    return sum(r for r, _ in seen.values()), sum(c for _, c in seen.values())


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


def bench_model(name: str, root: Path, env: dict, args) -> dict:
    """Both servers on one model of the matrix; c=1 and c=8 for each."""
    model = matrix.build(name, root / name)
    rows = json.loads(matrix.inputs(name, 200).to_json(orient="records"))
    bodies_mlcd = [json.dumps([r]).encode() for r in rows]
    bodies_mlflow = [json.dumps({"dataframe_records": [r]}).encode() for r in rows]
    p_mlcd, p_mlflow = free_port(), free_port()
    cmd = [str(BIN / "mlcd"), "serve", "--model-uri", str(model), "--port", str(p_mlcd),
           "--log-level", "warning", "--report-dir", str(root / f"rep-{name}")]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    procs = []
    try:
        mlcd = start(cmd, env, root / f"mlcd-{name}.log")
        procs.append(mlcd)
        mlflow = start([str(BIN / "mlflow"), "models", "serve", "-m", str(model), "-h",
                        "127.0.0.1", "-p", str(p_mlflow), "--env-manager", "local"], env,
                       root / f"mlflow-{name}.log")
        procs.append(mlflow)
        wait_healthy(p_mlcd, "/health", mlcd)
        wait_healthy(p_mlflow, "/health", mlflow)
        predict_path = "/predict?probabilities=false" if args.no_proba else "/predict"
        drive(p_mlcd, predict_path, bodies_mlcd, 200, 2)  # warm up both
        drive(p_mlflow, "/invocations", bodies_mlflow, 40, 2)
        out = {"load": os.getloadavg()[0]}
        workers = args.workers or len(os.sched_getaffinity(0))  # mlcd's default
        for c in (1, 8):
            before = worker_counters(p_mlcd, workers)
            mine = drive(p_mlcd, predict_path, bodies_mlcd, args.requests, c)
            after = worker_counters(p_mlcd, workers)
            calls = after[1] - before[1]
            mine["per_call"] = (after[0] - before[0]) / calls if calls else float("nan")
            out[c] = (mine, drive(p_mlflow, "/invocations", bodies_mlflow,
                                  args.mlflow_requests, c))
        return out
    finally:
        for p in procs:
            stop(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all",
                    help=f"models of the matrix, comma-separated: {', '.join(matrix.MODELS)} "
                         "or all (default)")
    ap.add_argument("--requests", type=int, default=3000, help="per run, mlcd serve")
    ap.add_argument("--mlflow-requests", type=int, default=400, help="per run, mlflow")
    ap.add_argument("--workers", type=int, default=0,
                    help="mlcd serve --workers (default: mlcd's own default)")
    ap.add_argument("--no-proba", action="store_true",
                    help="ask mlcd for predictions only (/predict?probabilities=false), "
                         "the same work mlflow does")
    args = ap.parse_args()
    names = matrix.parse(args.model)
    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLCD_PROGRESS": "0", **matrix.ENV}
    results = {}
    try:
        print(f"load average at start (2 cores, shared machine): "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"single-row requests; mlcd serve --workers {args.workers or 'default'} "
              f"(POST /predict{'?probabilities=false' if args.no_proba else ''}); "
              "mlflow models serve --env-manager local (POST /invocations)")
        print(f"{'model':<8}{'server':<22}{'c':>3}{'requests':>10}{'req/s':>10}"
              f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
        for name in names:
            r = results[name] = bench_model(name, root, env, args)
            for c in (1, 8):
                for server, x in zip(("mlcd serve", "mlflow models serve"), r[c], strict=True):
                    print(f"{name:<8}{server:<22}{c:>3}{x['n']:>10}{x['rps']:>10.1f}"
                          f"{x['p50']:>9.2f}{x['p99']:>9.2f}{x['errors']:>8}", flush=True)
        print()
        print("targets: c=1 >= 3x, c=8 >= 10x mlflow models serve; p99 at c=8 <= 25 ms; "
              "0 errors")
        print("| model | c=1 mlcd/mlflow | c=8 mlcd/mlflow | p99 at c=8, mlcd / mlflow "
              "| requests per model call at c=8 | errors | load |")
        print("|---|---|---|---|---|---|---|")
        for name in names:
            r = results[name]
            (a1, b1), (a8, b8) = r[1], r[8]
            errors = sum(x["errors"] for x in (a1, b1, a8, b8))
            print(f"| {matrix.ENTRIES[name].title} | {a1['rps'] / b1['rps']:.1f}x "
                  f"| {a8['rps'] / b8['rps']:.1f}x | {a8['p99']:.1f} ms / {b8['p99']:.0f} ms "
                  f"| {a8['per_call']:.1f} | {errors} | {r['load']:.1f} |")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

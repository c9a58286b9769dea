"""Soak benchmark: ``mlcd serve`` and the built app image under steady load for N minutes.

Not a test: it asserts nothing and prints figures. For each target it keeps
``--concurrency`` clients (threads, one keep-alive connection each) sending single-row
``POST /predict`` requests for ``--minutes``, then prints per minute the requests, errors
and p50/p99 latency, and the server's resident memory (RSS) at the start and the end of
the load (the process tree's RSS from /proc: ``mlcd serve``'s, and for the image the tree
of the container's first process, seen from the host). The image's cgroup memory (Docker
stats ``usage`` less ``inactive_file``) is printed beside it: it also counts the page cache
of the prediction log the image appends to, so it grows with the requests served. Errors
must be 0 and RSS flat.

Targets (``--targets serve,image``):

* ``serve``: ``mlcd serve`` on a loopback port for a small scikit-learn model (a scaler +
  logistic regression on 6 numeric features, MLflow signature);
* ``image``: the same model baked into an image by ``mlcd build-app`` (against
  ``DOCKER_HOST``, base image ``mlcd-base:bookworm`` unless ``--base-image``), run as a
  container published on a loopback port; the image and container are removed at the end.

    python benchmarks/soak_serve.py [--minutes 10] [--concurrency 8] [--targets serve,image]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_model(root: Path) -> tuple[Path, list[bytes]]:
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
               pip_requirements=["scikit-learn"],
               metadata={"mlcd": {"task": "classification", "label": "y"}})
    rows = X.head(500).round(6).to_dict(orient="records")
    return path, [json.dumps([r]).encode() for r in rows]


def wait_healthy(port: int, alive, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server stopped before it was healthy")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"no /health on port {port} after {timeout:g}s")


class Load:
    """``concurrency`` threads posting ``bodies`` round robin until ``stop`` is set; every
    answer is recorded as (second since start, latency ms, ok)."""

    def __init__(self, port: int, bodies: list[bytes], concurrency: int) -> None:
        self.port, self.bodies, self.concurrency = port, bodies, concurrency
        self.records: list[tuple[float, float, bool]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.t0 = 0.0

    def worker(self, k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = k
        local = []
        while not self.stop.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += self.concurrency
            t = time.perf_counter()
            ok = False
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                ok = resp.status == 200 and b"predictions" in data
                if not ok:
                    with self.lock:
                        self.errors.append(f"HTTP {resp.status}: {data[:120]!r}")
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            done = time.perf_counter()
            local.append((done - self.t0, (done - t) * 1000, ok))
        conn.close()
        with self.lock:
            self.records.extend(local)

    def run(self, seconds: float, on_start, on_end) -> None:
        threads = [threading.Thread(target=self.worker, args=(k,), daemon=True)
                   for k in range(self.concurrency)]
        self.t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(min(5.0, seconds / 4))  # warm: RSS at start once the load is on
        on_start()
        time.sleep(max(0.0, seconds - min(5.0, seconds / 4)))
        on_end()
        self.stop.set()
        for t in threads:
            t.join(60)


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(name: str, load: Load, rss: dict, minutes: float) -> dict:
    print(f"\n== {name}: {minutes:g} min at concurrency {load.concurrency}")
    print(f"{'minute':>6} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    per_minute: dict[int, list] = {}
    last = max(0, int(minutes * 60 - 1e-9) // 60)  # answers landing after the end count last
    for sec, ms, ok in load.records:
        per_minute.setdefault(min(int(sec // 60), last), []).append((ms, ok))
    rows = []
    for minute in sorted(per_minute):
        items = per_minute[minute]
        lat = [ms for ms, ok in items if ok]
        errs = sum(1 for _, ok in items if not ok)
        span = min(60.0, minutes * 60 - minute * 60) or 60.0
        rows.append({"minute": minute + 1, "requests": len(items), "errors": errs,
                     "p99_ms": round(p(lat, 0.99), 2)})
        print(f"{minute + 1:>6} {len(items):>9} {errs:>7} {len(items) / span:>8.0f} "
              f"{p(lat, 0.5):>8.2f} {p(lat, 0.99):>8.2f}")
    total = len(load.records)
    errors = sum(1 for *_, ok in load.records if not ok)
    lat = [ms for _, ms, ok in load.records if ok]
    growth = (rss["end"] - rss["start"]) / rss["start"] * 100 if rss.get("start") else float("nan")
    print(f"total {total} requests, errors {errors}, p50 {p(lat, 0.5):.2f} ms, "
          f"p99 {p(lat, 0.99):.2f} ms, mean {statistics.fmean(lat) if lat else float('nan'):.2f} ms")
    print(f"RSS start {rss.get('start', 0) / 2**20:.1f} MiB, end {rss.get('end', 0) / 2**20:.1f} "
          f"MiB ({growth:+.1f}%)")
    if load.errors:
        print("first errors:", *sorted(set(load.errors))[:5], sep="\n  ")
    return {"target": name, "requests": total, "errors": errors,
            "p99_ms": round(p(lat, 0.99), 2), "rss_start": rss.get("start"),
            "rss_end": rss.get("end"), "minutes": rows}


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (Linux /proc)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        try:
            for line in Path(f"/proc/{cur}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{cur}/task/{cur}/children").read_text().split()
            todo.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total


def soak_serve(model: Path, bodies: list[bytes], args) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLCD_PROGRESS": "0"}
    log = open(Path(args.work) / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "mlcd_actions", "serve", "--model-uri",
                             str(model), "--port", str(port), "--workers", str(args.workers)],
                            stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    rss: dict[str, int] = {}
    try:
        wait_healthy(port, lambda: proc.poll() is None)
        load = Load(port, bodies, args.concurrency)
        load.run(args.minutes * 60, lambda: rss.update(start=tree_rss(proc.pid)),
                 lambda: rss.update(end=tree_rss(proc.pid)))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    return report(f"mlcd serve (--workers {args.workers})", load, rss, args.minutes)


def soak_image(model: Path, bodies: list[bytes], args) -> dict:
    import docker

    tag = f"mlcd-soak:{os.getpid()}"
    build = subprocess.run([sys.executable, "-m", "mlcd_actions", "build-app", "--model-uri",
                            str(model), "--tag", tag, "--base-image", args.base_image,
                            "--report-dir", str(Path(args.work) / "reports")],
                           env={**os.environ, "PYTHONPATH": str(REPO), "MLCD_PROGRESS": "0"},
                           capture_output=True, text=True, timeout=1800)
    print(build.stdout.strip().splitlines()[-1] if build.stdout.strip() else build.stderr[-500:])
    if build.returncode != 0:
        raise RuntimeError(f"build-app failed: {build.stdout[-800:]} {build.stderr[-800:]}")
    # build-app also tags repo:model-<v> / repo:git-<sha>: every tag goes at the end
    built = json.loads((Path(args.work) / "reports" / "build-app.json").read_text())
    tags = built["outputs"]["tags"].split()
    client = docker.from_env()
    port = free_port()
    container = None
    rss: dict[str, int] = {}

    def memory() -> int:
        container.reload()
        stats = container.stats(stream=False)
        mem = stats.get("memory_stats") or {}
        cgroup = int(mem.get("usage") or 0) - int((mem.get("stats") or {}).get("inactive_file", 0))
        rss = tree_rss(int(container.attrs["State"]["Pid"]))
        print(f"  image memory: process tree RSS {rss / 2**20:.1f} MiB, "
              f"cgroup (usage - inactive_file) {cgroup / 2**20:.1f} MiB", flush=True)
        return rss

    try:
        container = client.containers.run(tag, detach=True, name=f"mlcd-soak-{os.getpid()}",
                                          ports={"8080/tcp": ("127.0.0.1", port)})

        def alive() -> bool:
            container.reload()
            return container.status in ("created", "running")

        wait_healthy(port, alive)
        load = Load(port, bodies, args.concurrency)
        load.run(args.minutes * 60, lambda: rss.update(start=memory()),
                 lambda: rss.update(end=memory()))
    finally:
        if container is not None:
            container.remove(force=True)
        for name in tags:
            client.images.remove(name, force=True)
    return report("app image (container)", load, rss, args.minutes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--targets", default="serve,image")
    ap.add_argument("--workers", type=int, default=1, help="mlcd serve --workers")
    ap.add_argument("--base-image", default="mlcd-base:bookworm")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="mlcd-soak-") as work:
        args.work = work
        model, bodies = make_model(Path(work))
        for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
            fn = {"serve": soak_serve, "image": soak_image}[target]
            results.append(fn(model, bodies, args))
            print(f"load average: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    bad = [r["target"] for r in results if r["errors"]]
    print("\nerrors: " + (", ".join(f"{r['target']} {r['errors']}" for r in results)))
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()

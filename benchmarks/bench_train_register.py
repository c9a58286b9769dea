"""Train-log-register overhead: ``mlcd train`` + ``mlcd register`` vs MLflow's defaults.

    .venv/bin/python benchmarks/bench_train_register.py [--rows 20000] [--repeat 2]

Both sides fit the same scikit-learn Pipeline (impute + scale + one-hot, logistic
regression) on the same Parquet file and track into their own embedded SQLite store
(tables created before timing, so neither pays MLflow's one-time migration):

* mlcd: ``mlcd train --estimator logistic_regression`` then ``mlcd register``, each a
  process as in CI. Overhead = wall time of both commands minus the fit (``fit_seconds``
  measured inside the training child).
* peer: one Python process doing what the MLflow docs show: ``start_run``, fit,
  ``log_params``, ``mlflow.sklearn.log_model(model, name="model", input_example=...)``
  (default requirement inference, which loads the model in a subprocess; cloudpickle
  format, because MLflow's default skops format refuses this Pipeline: "untrusted types
  numpy.dtype"), then ``mlflow.register_model``. Overhead = wall time minus its fit.

Target: mlcd overhead <= 3 s. Prints the medians and the ratio (peer / mlcd).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MLCD = str(BIN / "mlcd")

PEER = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import mlflow, mlflow.sklearn
    import pandas as pd
    from mlcd_actions.training import estimators
    uri, data, name = sys.argv[1:4]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("peer")
    df = pd.read_parquet(data)
    X, y = df.drop(columns=["label"]), df["label"]
    with mlflow.start_run() as run:
        model = estimators.build("logistic_regression", X)
        f0 = time.perf_counter()
        model.fit(X, y)
        fit = time.perf_counter() - f0
        mlflow.log_params({"estimator": "logistic_regression", "label": "label"})
        l0 = time.perf_counter()
        mlflow.sklearn.log_model(model, name="model", input_example=X.head(5),
                                 serialization_format="cloudpickle")
        log_model = time.perf_counter() - l0
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    print(json.dumps({"fit": fit, "log_model": log_model, "version": mv.version,
                      "inproc": time.perf_counter() - t0}))
""")


def make_data(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    df = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(8)})
    df["city"] = rng.choice(["paris", "lyon", "nice", "lille", None], rows)
    df["segment"] = rng.choice(list("abcdef"), rows)
    score = df.x0 + 0.5 * df.x1 - df.x2 + (df.city == "paris") * 0.7
    df["label"] = np.where(score + rng.normal(0, 0.5, rows) > 0, "yes", "no")
    df.to_parquet(path, index=False)


def init_store(uri: str) -> None:
    subprocess.run([sys.executable, "-c",
                    f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"],
                   check=True, capture_output=True)


def run_mlcd(work: Path, data: Path, uri: str, env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([MLCD, "train", "--train", str(data), "--label", "label",
                           "--estimator", "logistic_regression", "--tracking-uri", uri,
                           "--experiment", "mlcd"], cwd=work, env=env, capture_output=True,
                          text=True)
    t_train = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mlcd train failed:\n{proc.stdout}\n{proc.stderr}")
    rep = json.loads((work / ".mlcd/reports/train.json").read_text())
    t1 = time.perf_counter()
    proc = subprocess.run([MLCD, "register", "--model-uri", rep["outputs"]["model-uri"],
                           "--name", "bench-mlcd", "--tracking-uri", uri], cwd=work, env=env,
                          capture_output=True, text=True)
    t_register = time.perf_counter() - t1
    if proc.returncode != 0:
        raise SystemExit(f"mlcd register failed:\n{proc.stdout}\n{proc.stderr}")
    fit = rep["metrics"]["fit_seconds"]
    timings = rep["details"]["timings"]
    return {"wall": t_train + t_register, "train": t_train, "register": t_register, "fit": fit,
            "overhead": t_train + t_register - fit, "log_model": timings["logging_s"]}


def run_peer(work: Path, data: Path, uri: str, env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEER, uri, str(data), "bench-peer"], cwd=work,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"peer failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": wall, "fit": out["fit"], "log_model": out["log_model"],
            "overhead": wall - out["fit"]}


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        data = tmp / "train.parquet"
        make_data(data, args.rows)
        env = {**os.environ, "MLCD_PROGRESS": "0", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "GITHUB_ACTIONS", "CI"):
            env.pop(var, None)
        ours, peers = [], []
        for tool in ("mlcd", "peer"):
            (tmp / tool).mkdir()
            init_store(f"sqlite:///{tmp / tool / 'mlflow.db'}")
        print(f"data: {args.rows:,} rows x 10 features; {args.repeat} run(s) each, alternating")
        for i in range(args.repeat):
            for tool in ("mlcd", "peer"):
                uri = f"sqlite:///{tmp / tool / 'mlflow.db'}"
                if tool == "mlcd":
                    r = run_mlcd(tmp / tool, data, uri, env)
                    ours.append(r)
                    print(f"  mlcd #{i + 1}: train {r['train']:.2f}s + register "
                          f"{r['register']:.2f}s, fit {r['fit']:.2f}s, log model+metrics+"
                          f"golden {r['log_model']:.2f}s -> overhead {r['overhead']:.2f}s")
                else:
                    r = run_peer(tmp / tool, data, uri, env)
                    peers.append(r)
                    print(f"  peer #{i + 1}: wall {r['wall']:.2f}s, fit {r['fit']:.2f}s, "
                          f"log_model {r['log_model']:.2f}s -> overhead {r['overhead']:.2f}s")
        o = statistics.median(r["overhead"] for r in ours)
        p = statistics.median(r["overhead"] for r in peers)
        lm = statistics.median(r["log_model"] for r in peers)
        olm = statistics.median(r["log_model"] for r in ours)
        print(f"mlcd train+register overhead beyond the fit: {o:.2f}s (median; target <= 3s)")
        print(f"peer (MLflow defaults) overhead beyond the fit: {p:.2f}s (median)")
        print(f"ratio peer/mlcd, end to end: {p / o:.2f}x")
        print(f"logging step alone: mlcd {olm:.2f}s (model with explicit requirements, "
              f"metrics, golden samples) vs peer log_model {lm:.2f}s -> ratio {lm / olm:.2f}x")
        load = os.getloadavg()[0]
        print(f"load average at the end: {load:.1f} on {os.cpu_count()} cores "
              "(numbers scale with contention)")


if __name__ == "__main__":
    main()

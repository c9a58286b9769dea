"""Train-log-register overhead: ``mlcd train`` + ``mlcd register`` vs MLflow's defaults.

    .venv/bin/python benchmarks/bench_train_register.py [--rows 20000] [--repeat 2]
        [--model logreg rf hgb] [--backend server sqlite] [--baseline DIR]

A matrix of models users ship, each fitted by both sides on the same Parquet file
(8 numeric columns, 2 text columns one-hot encoded by the built-in preprocessing):

* ``logreg``: impute + scale + one-hot, logistic regression (``logistic_regression``);
* ``rf``: the same preprocessing, RandomForest (``random_forest_classifier``);
* ``hgb``: the same preprocessing, HistGradientBoosting (``gradient_boosting_classifier``).

Against two tracking backends, each side with its own store, tables created before timing
(neither pays MLflow's one-time migration):

* ``server``: a real ``mlflow server --workers 1`` on loopback
  (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``, proxied artifacts), as in CI;
* ``sqlite``: the embedded default, ``sqlite:///…/mlflow.db``.

What is timed:

* mlcd: ``mlcd train --estimator NAME`` then ``mlcd register``, each its own process as
  in CI. Overhead = wall time of both commands minus the fit (``fit_seconds``, measured
  inside the training child).
* peer: one fresh Python process doing what the MLflow docs show: ``start_run``, fit,
  ``log_params``, ``mlflow.sklearn.log_model(model, name="model", input_example=...)``
  (default requirement inference, which loads the model in a subprocess; cloudpickle
  format, because MLflow's default skops format refuses these Pipelines: "untrusted types
  numpy.dtype"), then ``mlflow.register_model``. Overhead = wall time minus its fit.

``--baseline DIR`` also runs mlcd from another checkout of the code (``PYTHONPATH=DIR``,
e.g. the ``main`` branch) in the same minutes, alternating, to compare a change under the
same load; its overhead gets its own column.

Target: mlcd overhead <= 3 s. Prints every run with mlcd's per-phase breakdown (the train
process's start-up and exit, reading the data, starting the fit, the lineage with opening
the tracking store and creating the run, waiting for the fit, loading the model back,
scoring, logging the model -- these two overlap for a built-in estimator --, golden
samples + metadata + metrics, then ``mlcd register``), then one row per
backend and model with the medians, the ratio (peer / mlcd), the CPU seconds of each
side's processes (fit included; less sensitive to other jobs than wall time), the phase
medians and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
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
MODELS = {"logreg": "logistic_regression", "rf": "random_forest_classifier",
          "hgb": "gradient_boosting_classifier"}
TARGET_S = 3.0

PEER = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import mlflow, mlflow.sklearn
    import pandas as pd
    from mlcd_actions.training import estimators
    uri, data, name, estimator = sys.argv[1:5]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("peer")
    df = pd.read_parquet(data)
    X, y = df.drop(columns=["label"]), df["label"]
    with mlflow.start_run() as run:
        model = estimators.build(estimator, X)
        f0 = time.perf_counter()
        model.fit(X, y)
        fit = time.perf_counter() - f0
        mlflow.log_params({"estimator": estimator, "label": "label"})
        l0 = time.perf_counter()
        mlflow.sklearn.log_model(model, name="model", input_example=X.head(5),
                                 serialization_format="cloudpickle")
        log_model = time.perf_counter() - l0
    r0 = time.perf_counter()
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    register = time.perf_counter() - r0
    print(json.dumps({"fit": fit, "log_model": log_model, "register": register,
                      "version": mv.version, "inproc": time.perf_counter() - t0}))
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(root: Path):
    """``mlflow server --workers 1`` on a loopback port, as the tests start it."""
    port = free_port()
    root.mkdir(parents=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"mlflow server exited {proc.returncode}; see "
                                     f"{root / 'server.log'}")
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", port), 0.5):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("mlflow server did not listen within 120 s")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def child_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far: unlike wall
    time, barely moved by other jobs on the machine."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_mlcd(work: Path, data: Path, uri: str, env: dict, estimator: str, name: str) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    c0 = child_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([MLCD, "train", "--train", str(data), "--label", "label",
                           "--estimator", estimator, "--tracking-uri", uri,
                           "--experiment", "mlcd"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=900)
    t_train = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mlcd train failed:\n{proc.stdout}\n{proc.stderr}")
    rep = json.loads((work / ".mlcd/reports/train.json").read_text())
    t1 = time.perf_counter()
    proc = subprocess.run([MLCD, "register", "--model-uri", rep["outputs"]["model-uri"],
                           "--name", name, "--tracking-uri", uri], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    t_register = time.perf_counter() - t1
    if proc.returncode != 0:
        raise SystemExit(f"mlcd register failed:\n{proc.stdout}\n{proc.stderr}")
    reg = json.loads((work / ".mlcd/reports/register.json").read_text())
    fit = rep["metrics"]["fit_seconds"]
    return {"wall": t_train + t_register, "train": t_train, "register": t_register, "fit": fit,
            "overhead": t_train + t_register - fit, "cpu": child_cpu() - c0,
            "log_model": rep["details"]["timings"]["logging_s"],
            "phases": phases(rep["details"]["timings"], t_train, t_register),
            "process": rep["details"].get("training_process"),
            "version": reg["outputs"]["model-version"]}


# mlcd train's own timings (report details.timings), in the order they happen
PHASES = (("read_s", "read"), ("start_training_s", "start fit"), ("tracking_s", "tracking"),
          ("training_s", "wait fit"), ("load_model_s", "load"), ("score_s", "score"),
          ("log_model_s", "log model"), ("finish_s", "golden+meta"))


def phases(timings: dict, t_train: float, t_register: float) -> dict[str, float]:
    """Seconds per phase: the train process's start-up and exit (interpreter, CLI, imports
    before the stage, the report) is its wall time minus the stage's own timings."""
    out = {label: float(timings.get(key, 0.0)) for key, label in PHASES}
    inside = timings.get("setup_s", 0.0) + timings.get("training_s", 0.0) + \
        timings.get("logging_s", 0.0)
    return {"cli start+exit": t_train - inside, **out, "register": t_register}


def phase_line(ph: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in ph.items())


def run_peer(work: Path, data: Path, uri: str, env: dict, estimator: str, name: str) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    c0 = child_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEER, uri, str(data), name, estimator],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"peer failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": wall, "fit": out["fit"], "log_model": out["log_model"],
            "cpu": child_cpu() - c0,
            "register": out["register"], "overhead": wall - out["fit"],
            "version": out["version"]}


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--model", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument("--backend", nargs="+", choices=("server", "sqlite"),
                    default=["server", "sqlite"])
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run mlcd from this checkout (PYTHONPATH=DIR), same minutes")
    args = ap.parse_args()
    env = {**os.environ, "MLCD_PROGRESS": "0", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "GITHUB_ACTIONS", "CI",
                "GITLAB_CI"):
        env.pop(var, None)
    print(f"data: {args.rows:,} rows x 10 features (8 numeric, 2 one-hot); "
          f"{args.repeat} run(s) per tool, alternating; load average at start "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    table = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        data = tmp / "train.parquet"
        make_data(data, args.rows)
        for backend in args.backend:
            with contextlib.ExitStack() as stack:
                if backend == "server":
                    uris = {tool: stack.enter_context(mlflow_server(tmp / f"server-{tool}"))
                            for tool in ("mlcd", "peer")}
                else:
                    uris = {tool: f"sqlite:///{tmp / backend / tool / 'mlflow.db'}"
                            for tool in ("mlcd", "peer")}
                    for tool, uri in uris.items():
                        (tmp / backend / tool).mkdir(parents=True)
                        init_store(uri)
                for key in args.model:
                    estimator = MODELS[key]
                    ours, peers, bases = [], [], []
                    for i in range(args.repeat):
                        work = tmp / "work" / backend / key / str(i)
                        if args.baseline:
                            r = run_mlcd(work / "baseline", data, uris["mlcd"],
                                         {**env, "PYTHONPATH": args.baseline}, estimator,
                                         f"bench-{key}")
                            bases.append(r)
                            print(f"  {backend:6s} {key:6s} base #{i + 1}: train "
                                  f"{r['train']:.2f}s + register {r['register']:.2f}s, fit "
                                  f"{r['fit']:.2f}s -> overhead {r['overhead']:.2f}s, CPU "
                                  f"{r['cpu']:.2f}s\n      phases (s): {phase_line(r['phases'])}")
                        r = run_mlcd(work / "mlcd", data, uris["mlcd"], env, estimator,
                                     f"bench-{key}")
                        ours.append(r)
                        print(f"  {backend:6s} {key:6s} mlcd #{i + 1}: train {r['train']:.2f}s "
                              f"+ register {r['register']:.2f}s, fit {r['fit']:.2f}s, log "
                              f"model+metrics+golden {r['log_model']:.2f}s -> overhead "
                              f"{r['overhead']:.2f}s, CPU {r['cpu']:.2f}s (version {r['version']}"
                              f", fit in a {r['process']})\n      phases (s): "
                              f"{phase_line(r['phases'])}")
                        r = run_peer(work / "peer", data, uris["peer"], env, estimator,
                                     f"bench-{key}")
                        peers.append(r)
                        print(f"  {backend:6s} {key:6s} peer #{i + 1}: wall {r['wall']:.2f}s, "
                              f"fit {r['fit']:.2f}s, log_model {r['log_model']:.2f}s, "
                              f"register_model {r['register']:.2f}s -> overhead "
                              f"{r['overhead']:.2f}s, CPU {r['cpu']:.2f}s "
                              f"(version {r['version']})")
                    o = statistics.median(r["overhead"] for r in ours)
                    p = statistics.median(r["overhead"] for r in peers)
                    table.append({
                        "backend": backend, "model": key, "mlcd_overhead_s": round(o, 2),
                        "mlcd_train_s": round(statistics.median(r["train"] for r in ours), 2),
                        "mlcd_register_s": round(statistics.median(r["register"] for r in ours),
                                                 2),
                        "peer_overhead_s": round(p, 2), "ratio": round(p / o, 2),
                        "mlcd_cpu_s": round(statistics.median(r["cpu"] for r in ours), 2),
                        "peer_cpu_s": round(statistics.median(r["cpu"] for r in peers), 2),
                        "mlcd_phases_s": {k: round(statistics.median(r["phases"][k]
                                                                     for r in ours), 2)
                                          for k in ours[0]["phases"]},
                        "load": round(os.getloadavg()[0], 1)})
                    if bases:
                        table[-1]["baseline_overhead_s"] = round(statistics.median(
                            r["overhead"] for r in bases), 2)
                        table[-1]["baseline_cpu_s"] = round(statistics.median(
                            r["cpu"] for r in bases), 2)
    print()
    print("| backend | model | mlcd overhead | (train + register wall) | MLflow defaults "
          "overhead | ratio peer/mlcd | target <= 3 s | CPU mlcd / peer (fit included) | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in table:
        print(f"| {row['backend']} | {row['model']} | {row['mlcd_overhead_s']:.2f} s | "
              f"{row['mlcd_train_s']:.2f} + {row['mlcd_register_s']:.2f} s | "
              f"{row['peer_overhead_s']:.2f} s | {row['ratio']:.2f}x | "
              f"{'met' if row['mlcd_overhead_s'] <= TARGET_S else 'MISSED'} | "
              f"{row['mlcd_cpu_s']:.2f} / {row['peer_cpu_s']:.2f} s | {row['load']:.1f} |")
    print()
    if any("baseline_overhead_s" in row for row in table):
        print(f"baseline ({args.baseline}), same runs: overhead and CPU, medians")
        for row in table:
            print(f"  {row['backend']:6s} {row['model']:6s} baseline "
                  f"{row['baseline_overhead_s']:.2f} s (CPU {row['baseline_cpu_s']:.2f} s) "
                  f"vs this {row['mlcd_overhead_s']:.2f} s (CPU {row['mlcd_cpu_s']:.2f} s)")
        print()
    print("mlcd phases, medians in seconds (train process, then register):")
    for row in table:
        print(f"  {row['backend']:6s} {row['model']:6s} {phase_line(row['mlcd_phases_s'])}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(times scale with contention)")
    print(json.dumps(table))


if __name__ == "__main__":
    main()

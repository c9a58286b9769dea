"""Serving image size: ``mlcd build-app`` on every model of the matrix, against the base image.

Builds the app image of each chosen model of ``benchmarks/matrix.py`` (saved as ``mlcd
train`` saves them) with ``mlcd build-app`` on a local base image (default
``mlcd-base:bookworm``, the Debian image the tests build with debootstrap) and the
``DOCKER_HOST`` engine, and prints one row per model: the image size, what it adds to the
base image, the build time, whether mlflow is installed in it (only models that cannot be
loaded without it, such as a ``python_function`` model, get ``mlflow-skinny``), the time
from starting the container to its first answer on ``/health`` (start to ready), and
whether its first ``/predict`` answer equals the model's own predictions computed on the
host with MLflow (``mlflow.pyfunc.load_model(...).predict``). Then, per model, the
largest installed distributions in the image. Target: <= 600 MB per model.

Peer: none. ``mlflow models build-docker`` needs a registry (its base image) and an
index (it installs mlflow and the model's requirements with pip inside the build), and
neither is reachable on this machine; the base image is the reference. Images are
removed at the end. Nothing is asserted.

    python benchmarks/bench_image.py [--model all|logreg,pyfunc] [--base-image mlcd-base:bookworm]
                                     [--wheelhouse DIR] [--top 8]
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
import urllib.request
from pathlib import Path

import matrix

BIN = Path(sys.executable).parent
MB = 1000 * 1000
TARGET_MB = 600
# run inside the image: the size of each installed distribution (its RECORD files plus
# the bytecode Python wrote beside them), largest first
SIZES = """
import importlib.metadata as md, json, os
out = {}
for d in md.distributions():
    total, dirs = 0, set()
    for f in d.files or ():
        p = str(f.locate())
        if os.path.isfile(p) and "__pycache__" not in p:
            total += os.path.getsize(p)
            dirs.add(os.path.dirname(p))
    for x in dirs:
        c = os.path.join(x, "__pycache__")
        if os.path.isdir(c):
            total += sum(os.path.getsize(os.path.join(c, n)) for n in os.listdir(c))
    out[d.metadata["Name"]] = total
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all",
                    help=f"models of the matrix, comma-separated: {', '.join(matrix.MODELS)} "
                         "or all (default)")
    ap.add_argument("--base-image", default="mlcd-base:bookworm")
    ap.add_argument("--wheelhouse", default=None, help="build-app --wheelhouse")
    ap.add_argument("--top", type=int, default=8,
                    help="largest distributions listed per image (0: none)")
    args = ap.parse_args()
    import docker

    names = matrix.parse(args.model)
    client = docker.from_env()
    base = client.images.get(args.base_image)
    base_mb = base.attrs["Size"] / MB
    root = Path(tempfile.mkdtemp(prefix="bench-image-"))
    env = {**os.environ, "MLCD_PROGRESS": "0", **matrix.ENV}
    os.environ.update(matrix.ENV)
    rows, contents = [], {}
    try:
        print(f"load average: {_load()}; base image {args.base_image}: {base_mb:.0f} MB; "
              "peer: none (mlflow models build-docker needs a registry and an index, "
              "neither reachable here)", flush=True)
        for name in names:
            model = matrix.build(name, root / name)
            tag = f"mlcd-bench-image-{name}:{os.getpid()}"
            cmd = [str(BIN / "mlcd"), "build-app", "--model-uri", str(model), "--tag", tag,
                   "--base-image", args.base_image, "--rebuild",
                   "--report-dir", str(root / "rep")]
            if args.wheelhouse:
                cmd += ["--wheelhouse", args.wheelhouse]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
            if proc.returncode != 0:
                print(f"{name}: build-app failed: {proc.stdout[-500:]} {proc.stderr[-1500:]}",
                      flush=True)
                continue
            seconds = time.perf_counter() - t0
            try:
                image = client.images.get(tag)
                sizes = json.loads(client.containers.run(
                    tag, ["python3", "-c", SIZES], remove=True).decode())
                mlflow = any(n.lower().startswith("mlflow") for n in sizes)
                ready, answer = _answers(client, tag, name, model)
                rows.append((name, image.attrs["Size"] / MB, seconds, mlflow, ready, answer))
                contents[name] = sizes
                print(f"{name}: {image.attrs['Size'] / MB:.0f} MB, load {_load()}", flush=True)
            finally:
                client.images.remove(tag, force=True)
        print(f"\n{'model':<8}{'image MB':>10}{'over base':>11}{'build s':>9}  mlflow  "
              f"{'ready s':>8}  first /predict")
        for name, size, seconds, mlflow, ready, answer in rows:
            ready_s = f"{ready:8.1f}" if ready is not None else f"{'-':>8}"
            print(f"{name:<8}{size:>10.0f}{size - base_mb:>11.0f}{seconds:>9.0f}  "
                  f"{'yes' if mlflow else 'no':<6}  {ready_s}  {answer}")
        over = [n for n, size, *_ in rows if size > TARGET_MB]
        print(f"target: image <= {TARGET_MB} MB on every model: "
              + (f"missed by {', '.join(over)}" if over else
                 "met" if len(rows) == len(names) else "not every model was built"))
        for name, sizes in contents.items() if args.top else ():
            top = sorted(sizes.items(), key=lambda kv: -kv[1])[:args.top]
            print(f"{name} largest: " + ", ".join(f"{n} {s / MB:.1f}" for n, s in top)
                  + f" (MB; {len(sizes)} distributions, {sum(sizes.values()) / MB:.0f} MB)")
        print(f"load average at the end: {_load()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _expected(model: Path, name: str, rows) -> list:
    """The model's own answers, from MLflow on the host."""
    import mlflow.pyfunc

    return json.loads(json.dumps(mlflow.pyfunc.load_model(str(model)).predict(rows).tolist()))


def _answers(client, tag: str, name: str, model: Path) -> tuple[float | None, str]:
    """(seconds from start to the first 200 on /health, the first /predict compared)."""
    rows = matrix.inputs(name, 8)
    body = json.dumps(json.loads(rows.to_json(orient="records"))).encode()
    t0 = time.perf_counter()
    container = client.containers.run(tag, detach=True, ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        deadline = time.monotonic() + 180
        ready = None
        while time.monotonic() < deadline:
            container.reload()
            ports = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp")
            if ports:
                url = f"http://127.0.0.1:{ports[0]['HostPort']}"
                try:
                    if ready is None:
                        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                            if resp.status != 200:
                                continue
                        ready = time.perf_counter() - t0
                    req = urllib.request.Request(url + "/predict", data=body,
                                                 headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        got = json.load(resp)["predictions"]
                    want = _expected(model, name, rows)
                    return ready, ("OK, equal to MLflow's" if got == want else
                                   f"DIFFERENT: {got} vs MLflow {want}")
                except OSError:
                    pass
            time.sleep(0.2)
        return ready, "no answer: " + container.logs().decode(errors="replace")[-300:]
    finally:
        container.remove(force=True)


if __name__ == "__main__":
    main()

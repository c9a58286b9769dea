"""Serving image size: ``mlcd build-app`` on models of the matrix, against the base image.

Builds the app image of each chosen model of ``benchmarks/matrix.py`` (saved as ``mlcd
train`` saves them) with ``mlcd build-app`` on a local base image (default
``mlcd-base:bookworm``, the Debian image the tests build with debootstrap) and the
``DOCKER_HOST`` engine, checks the container answers ``/predict``, prints the image size,
what it adds to the base image, and whether mlflow is installed in it (only models that
cannot be loaded without it, such as a ``python_function`` model, get ``mlflow-skinny``).
Target: <= 600 MB. Images are removed at the end. Nothing is asserted.

    python benchmarks/bench_image.py [--model logreg,pyfunc] [--base-image mlcd-base:bookworm]
                                     [--wheelhouse DIR]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="logreg,pyfunc",
                    help=f"models of the matrix, comma-separated: {', '.join(matrix.MODELS)} "
                         "or all")
    ap.add_argument("--base-image", default="mlcd-base:bookworm")
    ap.add_argument("--wheelhouse", default=None, help="build-app --wheelhouse")
    args = ap.parse_args()
    import docker

    names = matrix.parse(args.model)
    client = docker.from_env()
    base = client.images.get(args.base_image)
    root = Path(tempfile.mkdtemp(prefix="bench-image-"))
    env = {**os.environ, "MLCD_PROGRESS": "0", **matrix.ENV}
    rows = []
    try:
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; base image "
              f"{args.base_image}: {base.attrs['Size'] / MB:.0f} MB")
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
                print(f"{name}: build-app failed: {proc.stdout[-500:]} {proc.stderr[-1500:]}")
                continue
            seconds = time.perf_counter() - t0
            try:
                image = client.images.get(tag)
                mlflow = client.containers.run(
                    tag, ["python3", "-c", "import importlib.util as u; "
                          "print(bool(u.find_spec('mlflow')))"], remove=True).decode().strip()
                answered = _answers(client, tag, name)
                rows.append((name, image.attrs["Size"] / MB, seconds, mlflow, answered))
            finally:
                client.images.remove(tag, force=True)
        print(f"{'model':<8}{'image MB':>10}{'over base':>11}{'build s':>9}  mlflow  /predict")
        for name, size, seconds, mlflow, answered in rows:
            print(f"{name:<8}{size:>10.0f}{size - base.attrs['Size'] / MB:>11.0f}"
                  f"{seconds:>9.0f}  {mlflow:<6}  {answered}")
        print("target: image <= 600 MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _answers(client, tag: str, name: str) -> str:
    container = client.containers.run(tag, detach=True, ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        deadline = time.monotonic() + 180
        body = json.dumps(json.loads(matrix.inputs(name, 2).to_json(orient="records"))).encode()
        while time.monotonic() < deadline:
            container.reload()
            ports = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp")
            if ports:
                url = f"http://127.0.0.1:{ports[0]['HostPort']}/predict"
                try:
                    req = urllib.request.Request(url, data=body,
                                                 headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        return f"{resp.status} {json.load(resp)['predictions']}"
                except OSError:
                    pass
            time.sleep(1)
        return "no answer: " + container.logs().decode(errors="replace")[-300:]
    finally:
        container.remove(force=True)


if __name__ == "__main__":
    main()

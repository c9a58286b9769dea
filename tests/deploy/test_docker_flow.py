"""build-app -> deploy (docker) -> smoke-test -> rollback against a real Docker engine.

The engine is a `dockerd` started by the test setup (tests/services.py), the base image is
built locally with debootstrap, and the image installs every dependency from a wheelhouse
built on the host (offline mode, as air-gapped users run it)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from mlcd_actions.delivery import images

pytestmark = [pytest.mark.slow, pytest.mark.service]
WHEELHOUSE = Path(__file__).resolve().parents[2] / ".tools" / "wheelhouse"


def _wheelhouse(reqs, no_deps, tmp_path_factory) -> str:
    """mlcd-actions (built from this tree) and ``reqs`` (``no_deps`` without their
    dependencies) as wheels. The third-party wheels are built once on the host with pip and
    cached in .tools/, keyed by pyproject.toml and the requirements."""
    import hashlib
    import shutil
    import subprocess
    import sys

    root = images.project_root()
    key = hashlib.sha256(((root / "pyproject.toml").read_text() + "\n".join(reqs)
                          + "\n".join(no_deps)).encode()).hexdigest()[:16]
    cache = WHEELHOUSE / key
    if not (cache / ".complete").exists():
        images.build_wheelhouse(cache, reqs, no_deps=no_deps)
        (cache / ".complete").write_text("ok")
    session = tmp_path_factory.mktemp("wheelhouse")
    for whl in cache.glob("*.whl"):
        if not whl.name.startswith("mlcd_actions-"):
            shutil.copy2(whl, session / whl.name)
    built = _PROJECT_WHEELS.get(str(tmp_path_factory.getbasetemp()))
    if built is None:  # once per session: every image of the session installs this tree
        out = tmp_path_factory.mktemp("project-wheel")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", str(out), str(root)],
                       check=True)
        built = _PROJECT_WHEELS[str(tmp_path_factory.getbasetemp())] = next(out.glob("*.whl"))
    shutil.copy2(built, session / built.name)
    return str(session)


_PROJECT_WHEELS: dict[str, Path] = {}  # the session's base temp folder -> its wheel


@pytest.fixture(scope="session")
def wheelhouse(_registered_store, tmp_path_factory):
    """The wheelhouse of the registered test model: mlcd-actions, the serving stack and
    the model's requirements."""
    store, _ = _registered_store
    model_dir = next(store.rglob("MLmodel")).parent
    return _wheelhouse(images.requirements(model_dir), images.no_deps_requirements(model_dir),
                       tmp_path_factory)


@pytest.fixture
def docker_env(docker_host, base_image, monkeypatch):
    import docker

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    client = docker.DockerClient(base_url=docker_host)

    def clean():
        for c in client.containers.list(all=True, filters={"label": "mlcd.environment"}):
            c.remove(force=True)
        for image in client.images.list(name="mlcd-demo"):
            for tag in image.tags:
                client.images.remove(tag, noprune=True)

    clean()  # an engine reused from an earlier run starts from no app images
    yield docker_host
    clean()
    client.close()


def metadata(url):
    with urllib.request.urlopen(url + "/metadata", timeout=5) as resp:
        return json.load(resp)


def predict(url, rows):
    req = urllib.request.Request(url + "/predict", data=json.dumps(rows).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def current(env):
    return json.load(open(f".mlcd/deployments/{env}.json"))["current"]


@pytest.mark.usefixtures("stop_deployments")  # the environment's nginx too
@pytest.mark.timeout(900)  # two image builds, then direct, rollback, shadow and promote
def test_build_promote_and_roll_back(mlcd, registered, wheelhouse, docker_env, base_image,
                                     docker_client):
    g1 = registered["versions"]["1"]["golden"]
    common = ["--base-image", base_image, "--wheelhouse", wheelhouse]
    r = mlcd("build-app", "--model-uri", "models:/demo/1", "--tag", "mlcd-demo:1",
             "--context-dir", "ctx1", *common)
    assert r.exit_code == 0, r
    built = json.load(open(".mlcd/reports/build-app.json"))
    digest1 = built["outputs"]["digest"]
    assert built["outputs"]["built"] is True
    dockerfile = Path("ctx1/Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile and "HEALTHCHECK" in dockerfile
    assert "--no-index" in dockerfile
    image = docker_client.images.get("mlcd-demo:1")
    labels = image.labels
    # the slim serving image: the serving runtime, mlcd-actions without its other
    # dependencies, no mlflow for a scikit-learn model (benchmarks/bench_image.py: size)
    assert "--no-deps mlcd-actions" in dockerfile
    installed = Path("ctx1/wheelhouse/requirements.txt").read_text().split()
    assert not [r for r in installed if r.lower().startswith(("mlflow", "pandera", "dvc"))]
    print(f"serving image mlcd-demo:1: {image.attrs['Size'] / 1e6:.0f} MB")
    assert labels["mlcd.model.name"] == "demo" and labels["mlcd.model.version"] == "1"
    assert labels["mlcd.lineage_id"].startswith("lin-")

    # the same model again: reused, never rebuilt
    r = mlcd("build-app", "--model-uri", "models:/demo/1", "--tag", "mlcd-demo:1", *common)
    assert r.exit_code == 0, r
    again = json.load(open(".mlcd/reports/build-app.json"))["outputs"]
    assert again["built"] is False and again["digest"] == digest1

    r = mlcd("build-app", "--model-uri", "models:/demo/2", "--tag", "mlcd-demo:2", *common)
    assert r.exit_code == 0, r

    # staging, then production: the same image (digest) promoted by retagging
    r = mlcd("deploy", "--environment", "staging", "--target", "docker", "--image", "mlcd-demo:1")
    assert r.exit_code == 0, r
    staging = current("staging")
    assert metadata(staging["url"])["model_version"] == "1"
    r = mlcd("smoke-test", "--url", staging["url"], "--samples", g1, "--expect-model-version", "1")
    assert r.exit_code == 0, r
    assert docker_client.images.get("mlcd-demo:staging").id == digest1

    r = mlcd("deploy", "--environment", "production", "--target", "docker", "--image", "mlcd-demo:1")
    assert r.exit_code == 0, r
    assert docker_client.images.get("mlcd-demo:production").id == digest1
    r = mlcd("deploy", "--environment", "production", "--target", "docker", "--image", "mlcd-demo:2")
    assert r.exit_code == 0, r
    prod2 = current("production")
    # the replaced container is gone, only after the new one was healthy
    running = [c.name for c in docker_client.containers.list(
        filters={"label": "mlcd.environment=production"})]
    assert running == [prod2["handle"]["name"]]

    # a smoke failure in production triggers rollback: the old version answers again
    r = mlcd("smoke-test", "--url", prod2["url"], "--samples", g1, "--expect-model-version", "1")
    assert r.exit_code == 1, r
    r = mlcd("rollback", "--environment", "production")
    assert r.exit_code == 0, r
    prod1 = current("production")
    assert metadata(prod1["url"])["model_version"] == "1"
    assert prod1["image"] == "mlcd-demo:1"
    from mlflow import MlflowClient

    from mlcd_actions.models import tracking

    tracking.configure()
    assert str(MlflowClient().get_model_version_by_alias("demo", "champion").version) == "1"
    # the app writes its prediction log inside the container, as the non-root user
    container = docker_client.containers.get(prod1["handle"]["container"])
    assert container.attrs["Config"]["User"] == "10001:10001"

    # a shadow of v2 behind nginx, then promote: the answers come from v1 meanwhile, the
    # comparison reads both containers' prediction logs, and afterwards /metadata, the image
    # labels, the alias and the promotion history agree on what runs
    r = mlcd("deploy", "--environment", "production", "--target", "docker",
             "--image", "mlcd-demo:2", "--strategy", "shadow")
    assert r.exit_code == 0, r
    front = json.load(open(".mlcd/deployments/production.json"))["router"]["url"]
    rows = json.load(open(g1))["inputs"]
    for _ in range(20):
        assert predict(front, rows)["model_version"] == "1"
    r = mlcd("promote", "--environment", "production", "--min-requests", "20",
             "--threshold", "error_rate<=0", "--threshold", "agreement>=0")
    assert r.exit_code == 0, r
    m = json.load(open(".mlcd/reports/promote.json"))["metrics"]
    assert (m["requests"], m["candidate_requests"]) == (20, 20)
    assert m["compared_rows"] == 20 * len(rows)
    prod = current("production")
    labels = docker_client.images.get(prod["image"]).labels
    assert metadata(front)["model_version"] == labels["mlcd.model.version"] == "2"
    running = [c.name for c in docker_client.containers.list(
        filters={"label": "mlcd.environment=production"})]
    assert running == [prod["handle"]["name"]]
    r = mlcd("history", "--environment", "production")
    assert r.exit_code == 0, r
    hist = json.load(open(".mlcd/reports/history.json"))["details"]
    assert hist["agreement"] == {"history": "2", "alias": "2", "metadata": "2", "image": "2"}
    assert [(e["action"], e["to_version"]) for e in hist["entries"]] == [
        ("deploy", "1"), ("deploy", "2"), ("rollback", "1"), ("start", "2"), ("promote", "2")]


def test_build_app_bad_input(mlcd, registered, docker_env):
    r = mlcd("build-app", "--model-uri", "models:/demo/9", "--tag", "x:1")
    assert r.exit_code == 2, r
    assert "models:/demo/9" in r.verdict
    r = mlcd("build-app", "--model-uri", "models:/demo/1", "--tag", "x:1",
             "--wheelhouse", "empty-dir")
    assert r.exit_code == 2, r
    assert "--wheelhouse empty-dir: no .whl files there" in r.verdict
    r = mlcd("build-app", "--model-uri", "models:/demo/1", "--tag", "x:1",
             "--docker-host", "unix:///nonexistent/docker.sock")
    assert r.exit_code == 3, r
    assert "Docker engine unix:///nonexistent/docker.sock unreachable" in r.verdict


@pytest.mark.timeout(900)  # one image build
def test_a_python_function_model_image_is_slim_and_answers_as_mlflow(
        mlcd, docker_env, base_image, docker_client, tmp_path_factory, monkeypatch):
    """The ``python_function`` model of the benchmark matrix (a numpy scorer, not
    scikit-learn): its image holds mlflow-skinny without what serving never imports, and
    answers exactly as MLflow does on the host."""
    import time

    import mlflow.pyfunc

    from benchmarks import matrix

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    model = matrix.build("pyfunc", tmp_path_factory.mktemp("pyfunc") / "model", rows=500)
    wheels = _wheelhouse(images.requirements(model), images.no_deps_requirements(model),
                         tmp_path_factory)
    tag = "mlcd-demo:pyfunc"
    r = mlcd("build-app", "--model-uri", str(model), "--tag", tag, "--base-image", base_image,
             "--wheelhouse", wheels, "--context-dir", "ctx")
    assert r.exit_code == 0, r
    assert "--no-deps -r /tmp/wheelhouse/requirements-no-deps.txt" in \
        Path("ctx/Dockerfile").read_text()
    image = docker_client.images.get(tag)
    print(f"serving image {tag} (python_function model): {image.attrs['Size'] / 1e6:.0f} MB")
    names = set(docker_client.containers.run(tag, [
        "python3", "-c", "import importlib.metadata as m; "
        "print(' '.join(d.metadata['Name'].lower().replace('_', '-') "
        "for d in m.distributions()))"], remove=True).decode().split())
    assert {"mlflow-skinny", "mlcd-actions", "databricks-sdk", "fastapi", "pandas"} <= names
    assert not names & {"scikit-learn", "scipy", "gitpython", "python-dotenv", "google-auth",
                        "cryptography", "pyarrow", "pip", "setuptools", "mlflow"}

    rows = matrix.inputs("pyfunc", 40, seed=3)
    want = mlflow.pyfunc.load_model(str(model)).predict(rows).tolist()
    body = rows.to_json(orient="records").encode()
    container = docker_client.containers.run(tag, detach=True,
                                             ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        deadline, got = time.monotonic() + 240, None
        while got is None and time.monotonic() < deadline:
            container.reload()
            assert container.status in ("created", "running"), container.logs()[-2000:]
            ports = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp")
            if ports:
                try:
                    got = predict(f"http://127.0.0.1:{ports[0]['HostPort']}",
                                  json.loads(body))["predictions"]
                except OSError:
                    time.sleep(0.5)
            else:
                time.sleep(0.5)
        assert got == want, container.logs()[-2000:]
    finally:
        container.remove(force=True)

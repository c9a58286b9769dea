"""Real services on loopback for the tests: an HTTP file server, an FTP server (pyftpdlib),
an S3-compatible server (moto's standalone server, a separate process) and an
``mlflow server``.

Each starts on a free 127.0.0.1 port, waits with a bounded loop and stops at the end.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def machine_lock(name: str):
    """An exclusive lock across processes (the pytest-xdist workers) around building a shared
    cache in ``.tools/``: the second one waits, then finds it built."""
    import fcntl

    path = Path(tempfile.gettempdir()) / f"mlcd-tests-{name}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ------------------------------------------------------------------ HTTP

class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serve ``root`` (a fresh directory) over HTTP on loopback; yields (base_url, root)."""
    root = tmp_path / "http-root"
    root.mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ FTP

@dataclass
class FtpServer:
    host: str
    port: int
    user: str
    password: str
    root: Path

    def url(self, path: str = "", *, login: bool = False) -> str:
        auth = f"{self.user}:{self.password}@" if login else ""
        return f"ftp://{auth}{self.host}:{self.port}/{path.lstrip('/')}"


@pytest.fixture(scope="module")
def ftp_server(tmp_path_factory):
    """A real FTP server (pyftpdlib, in a thread) on loopback: one user, read-only, on a
    fresh directory; yields an :class:`FtpServer` (``localhost``: Hadoop keys its FTP
    credentials by host name, ``spark.hadoop.fs.ftp.user.localhost``)."""
    import logging

    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    root = tmp_path_factory.mktemp("ftp-root")
    server = FtpServer("localhost", 0, "mlcd", "ftp-test-secret", root)
    authorizer = DummyAuthorizer()
    authorizer.add_user(server.user, server.password, str(root), perm="elr")
    # a refused login is answered at once (pyftpdlib waits 3 s, against password guessing)
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer,
                                              "auth_failed_timeout": 0.1})
    ftpd = ThreadedFTPServer(("127.0.0.1", 0), handler)
    server.port = ftpd.address[1]
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            ftpd.serve_forever(timeout=0.2, blocking=False, handle_exit=False)
        ftpd.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stopping.set()
        thread.join(10)


# ------------------------------------------------------------------ S3

@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """An S3-compatible server (moto_server) on loopback; yields its endpoint URL."""
    exe = shutil.which("moto_server", path=str(BIN)) or shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 60, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """Credentials for the loopback S3 server, and a boto3 client. Yields (endpoint, client)."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    yield s3_endpoint, client


# ------------------------------------------------------------------ MLflow

def _empty_store() -> Path:
    """An empty MLflow SQLite store, its tables created and migrated the way ``mlflow
    server`` does it (``initialize_backend_stores``, served artifacts), made once per machine
    and MLflow version. A new server starts on a copy and skips the migrations (seconds)."""
    from importlib.metadata import version

    path = Path(tempfile.gettempdir()) / f"mlcd-tests-mlflow-{version('mlflow')}-empty.db"
    with machine_lock("mlflow-empty-store"):  # pytest-xdist workers make it once
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            subprocess.run(
                [sys.executable, "-c",
                 "import sys; from mlflow.server.handlers import initialize_backend_stores; "
                 "initialize_backend_stores(sys.argv[1], sys.argv[1], 'mlflow-artifacts:/')",
                 f"sqlite:///{tmp}"], check=True, capture_output=True, timeout=300)
            os.replace(tmp, path)
    return path


def start_mlflow(root: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on ``root/mlflow.db`` (an empty store when there is none yet), in its
    own process group (:func:`kill_mlflow` ends the server and its uvicorn worker)."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    db = root / "mlflow.db"
    if not db.exists():
        shutil.copyfile(_empty_store(), db)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(root / "server.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    proc._mlcd_log = log  # type: ignore[attr-defined]
    try:
        wait_for_port(port, 90, proc)
    except Exception:
        kill_mlflow(proc)
        raise
    return proc, f"http://127.0.0.1:{port}"


def kill_mlflow(proc: subprocess.Popen) -> None:
    """End a :func:`start_mlflow` server at once, its uvicorn worker too (SIGKILL to its
    process group: SQLite keeps what was committed). At a fixture's teardown nothing waits
    for it; :func:`stop` is the graceful stop (seconds) that a restart test wants."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc._mlcd_log.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on a loopback port, shared by the session; yields its URI."""
    proc, uri = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    try:
        yield uri
    finally:
        kill_mlflow(proc)


# ------------------------------------------------------------------ Docker

BASE_IMAGE = "mlcd-base:bookworm"
_REPO = Path(__file__).resolve().parent.parent


def _docker_ping(url: str) -> bool:
    try:
        import docker

        client = docker.DockerClient(base_url=url, timeout=10)
        client.ping()
        client.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


def engine_folder(prefix: str) -> tuple[Path, bool]:
    """A new folder for a test ``dockerd`` (under /tmp: its socket path must fit in 108
    bytes) whose ``data`` (the engine's layers) is a tmpfs when this process may mount one
    (root) and the machine has 8 GiB of memory available: a build writes ~1 GB of small
    files, which a disk under load takes tens of seconds to write and as long again to
    delete. Returns the folder and whether ``data`` is in memory; :func:`remove_engine_folder`
    takes it away."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    (root / "data").mkdir()
    with open("/proc/meminfo") as fh:
        kib = next((int(line.split()[1]) for line in fh if line.startswith("MemAvailable:")), 0)
    in_memory = kib >= 8 * 2**20 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6g,mode=0711", "mlcd-test-dockerd",
         str(root / "data")], capture_output=True).returncode == 0
    return root, in_memory


def remove_engine_folder(root: Path) -> None:
    """Take away an :func:`engine_folder` once its engine stopped: every mount under it
    (a container's overlay may stay mounted; the tmpfs last), then the files."""
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1] for line in fh]
    inside = [m for m in points if m == str(root) or m.startswith(f"{root}/")]
    for point in sorted(set(inside), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)
    # rm is several times faster than shutil.rmtree on an engine's layer folders
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], capture_output=True,
                   timeout=300)


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory):
    """A Docker engine for the tests: ``$DOCKER_HOST`` when it answers, else a ``dockerd``
    started here in an :func:`engine_folder` (root needed; CI runs as root). Yields the
    URL."""
    existing = os.environ.get("DOCKER_HOST")
    if existing and _docker_ping(existing):
        yield existing
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.fail("no Docker engine: set DOCKER_HOST or install docker.io (./run test does)")
    root, _ = engine_folder("mlcd-dk-")
    sock = root / "docker.sock"
    url = f"unix://{sock}"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "docker.pid"), "-H", url],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _docker_ping(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError("dockerd did not start: "
                                   + (root / "dockerd.log").read_text()[-2000:])
            time.sleep(0.5)
        yield url
    finally:
        stop(proc)
        log.close()
        remove_engine_folder(root)


def build_base_image(client, tag: str = BASE_IMAGE) -> str:
    """A Debian bookworm image with python3 + pip, built locally with debootstrap (no
    registry is reachable). The root file system is cached in ``.tools/``."""
    try:
        client.images.get(tag)
        return tag
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound
        pass
    cache = _REPO / ".tools" / "bookworm-python3-rootfs.tar"
    if not cache.exists():
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not Path(debootstrap).exists():
            pytest.fail("debootstrap not installed (./run test installs it)")
        work = Path(tempfile.mkdtemp(prefix="mlcd-rootfs-", dir="/tmp"))
        rootfs = work / "rootfs"
        subprocess.run([debootstrap, "--variant=minbase",
                        "--include=python3,python3-pip,python3-venv,ca-certificates",
                        "bookworm", str(rootfs)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT, timeout=900)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp), "."], check=True)
        os.replace(tmp, cache)
        shutil.rmtree(work, ignore_errors=True)
    with open(cache, "rb") as fh:
        client.api.import_image_from_data(fh.read(), repository=tag.split(":")[0],
                                          tag=tag.split(":")[1],
                                          changes=['CMD ["python3"]'])
    return tag


@pytest.fixture(scope="session")
def docker_client(docker_host):
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=600)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client):
    """Tag of the locally built base image (python3 + pip on Debian bookworm)."""
    return build_base_image(docker_client)

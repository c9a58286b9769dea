"""``mlcd register`` through the CLI against real ``mlflow server`` processes."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.services import free_port, start_mlflow, stop

DATA = Path(__file__).resolve().parents[1] / "data" / "train"
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def _train(uri: str, tmp_path: Path) -> dict:
    from mlcd_actions.stages import train

    res = train.run(str(DATA / "reg_train.parquet"), label="price", estimator="ridge",
                    tracking_uri=uri, code_version="3.1.0", echo_log=False,
                    report_dir=str(tmp_path / "no-reports"))
    assert res.status == "passed", res.reason
    return res.outputs


def test_register_on_a_server_is_idempotent(mlcd, mlflow_server, isolated, tmp_path):
    from mlflow import MlflowClient

    outputs = _train(mlflow_server, tmp_path)
    args = ("register", "--model-uri", outputs["model-uri"], "--name", "cli-reg",
            "--tracking-uri", mlflow_server)
    r = mlcd(*args)
    assert r.exit_code == 0, r
    assert r.verdict.startswith(f"mlcd register: passed — {outputs['model-uri']} registered as "
                                "models:/cli-reg/")
    first = json.loads(Path(".mlcd/reports/register.json").read_text())["outputs"]
    r = mlcd(*args)
    assert r.exit_code == 0, r
    second = json.loads(Path(".mlcd/reports/register.json").read_text())["outputs"]
    assert second["model-version"] == first["model-version"]
    assert second["registered-uri"] == f"models:/cli-reg/{first['model-version']}"
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert len(client.search_model_versions("name = 'cli-reg'")) == 1
    mv = client.get_model_version_by_alias("cli-reg", "candidate")
    assert str(mv.version) == first["model-version"]
    assert mv.tags["mlcd.code_version"] == "3.1.0"
    assert mv.tags["mlcd.lineage_id"] == outputs["lineage-id"] == first["lineage-id"]


class _KillingProxy:
    """Forwards HTTP to an MLflow server; on the first request whose path contains
    ``trigger`` it kills the server (and answers 503), like a server dying mid-command."""

    def __init__(self, upstream: str, on_trigger, trigger: str) -> None:
        target = urlsplit(upstream)
        proxy = self
        self.seen: list[str] = []
        self.dead = False

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                proxy.seen.append(self.path)
                if proxy.dead or trigger in self.path:
                    if not proxy.dead:
                        proxy.dead = True
                        on_trigger()
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_server_killed_during_register_exits_3_and_sets_no_alias(mlcd, isolated, tmp_path):
    """Our own server (not the shared one): it dies after the version is created, before
    the alias; register exits 3 and the alias is not set; a rerun completes the same version."""
    from mlflow import MlflowClient

    root = tmp_path / "own-mlflow"
    port = free_port()
    proc, uri = start_mlflow(root, port)
    proxy = None
    try:
        outputs = _train(uri, tmp_path)
        proxy = _KillingProxy(uri, lambda: stop(proc), trigger="registered-models/set-tag")
        r = mlcd("register", "--model-uri", outputs["model-uri"], "--name", "dies",
                 "--tracking-uri", proxy.url, env=FAST_FAIL)
        assert r.exit_code == 3, r
        assert "unavailable while tagging the registered model" in r.verdict
        assert any("model-versions/create" in p for p in proxy.seen)
        assert not any("alias" in p for p in proxy.seen)
        assert proc.poll() is not None  # the server really died

        proc, uri = start_mlflow(root, port)  # same store: what did the dead server keep?
        client = MlflowClient(uri, registry_uri=uri)
        versions = client.search_model_versions("name = 'dies'")
        assert len(versions) == 1
        assert client.get_registered_model("dies").aliases == {}
        with pytest.raises(Exception, match="(?i)alias|not found|does not exist"):
            client.get_model_version_by_alias("dies", "candidate")

        r = mlcd("register", "--model-uri", outputs["model-uri"], "--name", "dies",
                 "--tracking-uri", uri)
        assert r.exit_code == 0, r
        assert "already registered as models:/dies/1" in r.verdict
        assert str(client.get_model_version_by_alias("dies", "candidate").version) == "1"
    finally:
        if proxy is not None:
            proxy.close()
        stop(proc)
        proc._mlcd_log.close()


def test_server_down_before_register_exits_3(mlcd, isolated):
    r = mlcd("register", "--model-uri", "runs:/0123456789abcdef0123456789abcdef/model",
             "--name", "x", "--tracking-uri", f"http://127.0.0.1:{free_port()}", env=FAST_FAIL)
    assert r.exit_code == 3, r
    assert "unavailable while reading the run" in r.verdict


def test_unknown_run_exit_2(mlcd, mlflow_server, isolated):
    r = mlcd("register", "--model-uri", "runs:/0123456789abcdef0123456789abcdef/model",
             "--name", "x", "--tracking-uri", mlflow_server)
    assert r.exit_code == 2, r
    assert "run 0123456789abcdef0123456789abcdef not found" in r.verdict

"""The kubernetes and command deploy targets, and the target registry.

No cluster runs here: `kubectl` is a recording stand-in script on PATH; what is checked is
the generated manifests and the kubectl calls (apply, then rollout status)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from mlcd_actions.core.errors import ConfigError, StageFailed
from mlcd_actions.deploy import TARGETS, get_target
from mlcd_actions.deploy.base import Deployment, DeploySpec


def test_registry_lists_builtins_and_rejects_unknown():
    assert TARGETS.names() == ["command", "docker", "kubernetes", "local"]
    with pytest.raises(ConfigError, match="unknown deploy target 'nomad'; known: command"):
        get_target("nomad")


@pytest.fixture
def fake_kubectl(tmp_path, monkeypatch):
    log = tmp_path / "kubectl.log"
    exe = tmp_path / "bin" / "kubectl"
    exe.parent.mkdir()
    exe.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n"
                   "case \"$*\" in *rollout*fail-me*) echo 'error: timed out' >&2; exit 1;; esac\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_kubernetes_applies_manifests_and_waits_for_rollout(mlcd, fake_kubectl):
    r = mlcd("deploy", "--environment", "staging", "--target", "kubernetes",
             "--image", "registry.example/credit:1.2.0", "--name", "credit",
             "--model-version", "3", "--namespace", "ml", "--replicas", "3",
             "--service-url", "https://credit-staging.example", "--no-move-alias")
    assert r.exit_code == 0, r
    calls = fake_kubectl.read_text().splitlines()
    assert calls[0].startswith("apply -f ")
    assert calls[1] == "rollout status deployment/mlcd-credit-staging -n ml --timeout=120s"
    docs = list(yaml.safe_load_all(Path(calls[0].split()[-1]).read_text()))
    deployment, service = docs
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/credit:1.2.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert deployment["metadata"]["annotations"]["mlcd/model-version"] == "3"
    out = json.load(open(".mlcd/reports/deploy.json"))["outputs"]
    assert out["url"] == "https://credit-staging.example"


def test_kubernetes_failed_rollout_is_exit_1(mlcd, fake_kubectl):
    r = mlcd("deploy", "--environment", "fail-me", "--target", "kubernetes",
             "--image", "x:1", "--name", "m")
    assert r.exit_code == 1, r
    assert "kubectl rollout status failed: error: timed out" in r.verdict
    assert not Path(".mlcd/deployments/fail-me.json").exists()


def test_command_hook_gets_documented_env_and_reports_url(mlcd, http_server, tmp_path):
    base, root = http_server
    (root / "health").write_text("ok")
    hook = tmp_path / "hook.sh"
    hook.write_text('#!/bin/sh\nenv | grep ^MLCD_ | sort > "$(dirname "$0")/env.txt"\n'
                    f'echo "url={base}" >> "$MLCD_DEPLOY_OUTPUT"\n')
    hook.chmod(0o755)
    r = mlcd("deploy", "--environment", "staging", "--target", "command", "--image", "app:7",
             "--name", "credit", "--model-version", "7", "--deploy-command", str(hook),
             "--no-move-alias")
    assert r.exit_code == 0, r
    env = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines())
    assert env["MLCD_ACTION"] == "deploy" and env["MLCD_ENVIRONMENT"] == "staging"
    assert env["MLCD_IMAGE"] == "app:7" and env["MLCD_MODEL_VERSION"] == "7"
    assert env["MLCD_PREVIOUS_IMAGE"] == ""
    assert json.load(open(".mlcd/reports/deploy.json"))["outputs"]["url"] == base


def test_alias_of_unregistered_model_is_exit_2(mlcd, fake_kubectl):
    r = mlcd("deploy", "--environment", "staging", "--target", "kubernetes", "--image", "x:1",
             "--name", "nobody", "--model-version", "1")
    assert r.exit_code == 2, r
    assert "cannot move alias 'staging' of model 'nobody' to version 1" in r.verdict


def test_command_hook_failure_is_exit_1_with_its_last_line(mlcd, tmp_path):
    r = mlcd("deploy", "--environment", "staging", "--target", "command", "--image", "app:7",
             "--deploy-command", "echo helm: release failed >&2; exit 4")
    assert r.exit_code == 1, r
    assert r.verdict.endswith("deploy hook exited 4: helm: release failed")


def test_command_hook_without_url_is_a_clear_failure(tmp_path):
    target = get_target("command", command="true")
    with pytest.raises(StageFailed, match="deploy hook gave no URL"):
        target.start(DeploySpec("staging", image="a:1"))
    assert target.stop(Deployment("staging", "command", "http://x")) is None


@pytest.mark.parametrize("content,needle", [
    ("[1, 2]", "golden samples must be a JSON object"),
    ('{"inputs": [1], "predictions": [0]}', "'inputs' must be a list of records"),
    ('{"inputs": [{"a": 1}], "predictions": [0, 1]}', "'predictions' must be a list as long"),
])
def test_smoke_test_rejects_malformed_samples(mlcd, http_server, content, needle):
    base, root = http_server
    (root / "health").write_text("ok")
    Path("golden.json").write_text(content)
    r = mlcd("smoke-test", "--url", base, "--samples", "golden.json")
    assert r.exit_code == 2, r
    assert needle in r.verdict


def test_smoke_test_dropped_connection_fails_the_check_not_the_tool(mlcd):
    """An app that accepts and closes connections: every check fails, no traceback."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            data = conn.recv(4096)
            if b"/health" in data:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        r = mlcd("smoke-test", "--url", f"http://127.0.0.1:{port}", "--timeout", "5")
    finally:
        stop.set()
        thread.join(5)
        srv.close()
    assert r.exit_code == 1, r
    assert "metadata: /metadata answered 0" in r.verdict
    assert "internal error" not in r.output


def test_build_context_dir_is_never_a_users_directory(tmp_path):
    from mlcd_actions.stages.build_app import _claim_context_dir

    user = tmp_path / "repo"
    user.mkdir()
    (user / "precious.py").write_text("x")
    with pytest.raises(ConfigError, match="not empty and not an mlcd build context"):
        _claim_context_dir(user)
    assert (user / "precious.py").exists()
    ctx = tmp_path / "ctx"
    _claim_context_dir(ctx)
    (ctx / "old").write_text("stale")
    _claim_context_dir(ctx)  # ours: emptied for the new build
    assert not (ctx / "old").exists()


def test_extra_tags_carry_model_version_and_git_sha():
    from mlcd_actions.stages.build_app import extra_tags

    assert extra_tags("reg.io:5000/acme/app:1.0", "3", "abcdef1234") == [
        "reg.io:5000/acme/app:model-3", "reg.io:5000/acme/app:git-abcdef1"]
    assert extra_tags("app", None, None) == []


def test_local_target_refuses_a_busy_fixed_port(http_server):
    base, _ = http_server
    port = int(base.rsplit(":", 1)[1])
    target = get_target("local")
    with pytest.raises(ConfigError, match=f"--port {port} is in use"):
        target.start(DeploySpec("staging", model_uri="models:/x/1", port=port))


def test_local_target_never_signals_a_foreign_pid():
    from mlcd_actions.deploy.local import LocalTarget, is_our_server

    assert not is_our_server(os.getpid(), "http://127.0.0.1:1")  # pytest, not mlcd serve
    LocalTarget().stop(Deployment("staging", "local", "http://127.0.0.1:1",
                                  handle={"pid": os.getpid()}))  # must not kill us

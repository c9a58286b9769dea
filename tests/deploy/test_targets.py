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

from mlcd_actions.deploy import TARGETS, get_target
from mlcd_actions.deploy.base import Deployment, DeploySpec
from mlcd_actions.errors import ConfigError, StageFailed


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
             "--url", "https://credit-staging.example", "--no-move-alias")
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

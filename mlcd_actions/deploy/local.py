"""``local``: the app as a background process on this machine (the demo and the tests).

Runs ``mlcd serve --model-uri URI`` detached (its own session, log file beside the
deployment state), waits for ``/health``, then the previous process is stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.deploy.base import (
    STATE_DIR,
    Deployment,
    DeploySpec,
    Target,
    free_port,
    now_iso,
    wait_healthy,
)


def port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def is_our_server(pid: int, url: str) -> bool:
    """True when ``pid`` is still the ``mlcd serve`` started for ``url`` (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True  # no /proc (macOS): trust the record
    args = [a.decode(errors="replace") for a in cmdline]
    port = url.rsplit(":", 1)[-1]
    return "serve" in args and any("mlcd" in a for a in args) and port in args


class LocalTarget(Target):
    name = "local"
    needs = "model_uri"

    def start(self, spec: DeploySpec) -> Deployment:
        if not spec.model_uri:
            raise ConfigError("--target local needs --model-uri")
        if spec.port and port_in_use(spec.host, spec.port):
            raise ConfigError(f"--port {spec.port} is in use on {spec.host} (by the running "
                              "version?); omit --port so the new version starts beside it")
        port = spec.port or free_port(spec.host)
        logdir = (Path(self.options.get("state_dir") or STATE_DIR) / "logs").resolve()
        logdir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path = logdir / f"{spec.environment}-{port}-{stamp}.log"
        predlog = logdir / f"{spec.environment}-predictions.jsonl"
        cmd = [sys.executable, "-m", "mlcd_actions", "serve", "--model-uri", spec.model_uri,
               "--host", spec.host, "--port", str(port), "--prediction-log", str(predlog),
               "--report-dir", str(logdir / "reports")]
        for opt, value in (("--model-name", spec.model_name),
                           ("--model-version", spec.model_version),
                           ("--lineage-id", spec.lineage_id)):
            if value:
                cmd += [opt, str(value)]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GITHUB_", "GITLAB_")) and k not in (
                   "MLCD_MODEL_URI", "MLCD_PORT", "MLCD_HOST", "MLCD_REPORT_DIR")}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        url = f"http://{spec.host}:{port}"
        dep = Deployment(spec.environment, self.name, url, model_uri=spec.model_uri,
                         model_name=spec.model_name, model_version=spec.model_version,
                         lineage_id=spec.lineage_id,
                         handle={"pid": proc.pid, "log": str(log_path),
                                 "prediction_log": str(predlog)},
                         deployed_at=now_iso())
        try:
            wait_healthy(url, spec.health_timeout, alive=lambda: proc.poll() is None,
                         what=f"mlcd serve (log: {log_path})")
        except BaseException:
            self.stop(dep)
            raise
        return dep

    def stop(self, deployment: Deployment) -> None:
        pid = deployment.handle.get("pid")
        if not pid or not is_our_server(pid, deployment.url):
            return  # gone, or the pid now belongs to another process: leave it alone
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    return
            except ChildProcessError:  # not our child: poll for existence instead
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_local_deployment(environment: str, state_dir: str | os.PathLike | None = None, *,
                          env: dict[str, str] | None = None, echo=print) -> int:
    """Stop the ``mlcd serve`` processes this target started for ``environment`` (current
    and previous version), as recorded in the state folder (``MLCD_STATE_DIR``, default
    ``.mlcd/deployments``). The CI templates call it when the job (GitHub) or the
    environment's smoke test (GitLab) ends: a CI runner is not a server, so the local
    target never leaves a process behind there. Returns how many it stopped."""
    from mlcd_actions.deploy.base import load_state

    env = dict(os.environ) if env is None else env
    folder = state_dir or env.get("MLCD_STATE_DIR") or STATE_DIR
    state = load_state(environment, folder)
    target = LocalTarget(state_dir=folder)
    stopped = 0
    for key in ("current", "previous"):
        dep = Deployment.from_dict(state.get(key))
        pid = (dep.handle or {}).get("pid") if dep else None
        if dep is None or dep.target != "local" or not pid or not is_our_server(pid, dep.url):
            continue
        target.stop(dep)
        stopped += 1
        echo(f"mlcd: stopped the local deployment of {environment} ({key}, {dep.url}, "
             f"pid {pid}): the CI job ends")
    return stopped

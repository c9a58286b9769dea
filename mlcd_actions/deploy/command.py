"""``command``: a user's own deploy hook (Helm, Terraform, a platform CLI ...).

The hook runs through the shell with these environment variables:

| variable | value |
|---|---|
| ``MLCD_ENVIRONMENT`` | the environment name |
| ``MLCD_IMAGE`` / ``MLCD_MODEL_URI`` | what to deploy (either may be empty) |
| ``MLCD_MODEL_NAME`` / ``MLCD_MODEL_VERSION`` / ``MLCD_LINEAGE_ID`` | about the model |
| ``MLCD_PREVIOUS_IMAGE`` / ``MLCD_PREVIOUS_MODEL_VERSION`` | what ran before (may be empty) |
| ``MLCD_DEPLOY_OUTPUT`` | a file the hook may write ``url=<url>`` lines into |
| ``MLCD_ACTION`` | ``deploy`` or ``stop`` |

A non-zero exit fails the stage (exit 1) with the hook's last output line. The URL is
read from ``MLCD_DEPLOY_OUTPUT`` or ``--service-url``. The ``stop_command`` option, if
given, is run the same way to stop a replaced deployment.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from mlcd_actions.core.errors import ConfigError, StageFailed
from mlcd_actions.deploy.base import Deployment, DeploySpec, Target, now_iso, wait_healthy


class CommandTarget(Target):
    name = "command"
    needs = "either"

    def _run(self, command: str, env_extra: dict[str, str], what: str) -> dict[str, str]:
        fd, out_path = tempfile.mkstemp(prefix="mlcd-deploy-", suffix=".env")
        os.close(fd)
        env = {**os.environ, **env_extra, "MLCD_DEPLOY_OUTPUT": out_path}
        try:
            proc = subprocess.run(command, shell=True, capture_output=True, text=True, env=env,
                                  timeout=float(self.options.get("timeout") or 1800))
            if proc.returncode != 0:
                last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise StageFailed(f"{what} hook exited {proc.returncode}: {last[0]}")
            values = {}
            for line in Path(out_path).read_text(encoding="utf-8").splitlines():
                if "=" in line:
                    k, v = line.split("=", 1)
                    values[k.strip()] = v.strip()
            return values
        except subprocess.TimeoutExpired as exc:
            raise StageFailed(f"{what} hook timed out") from exc
        finally:
            Path(out_path).unlink(missing_ok=True)

    def start(self, spec: DeploySpec) -> Deployment:
        command = self.options.get("command")
        if not command:
            raise ConfigError("--target command needs --deploy-command")
        prev = spec.options.get("previous") or {}
        env = {
            "MLCD_ACTION": "deploy",
            "MLCD_ENVIRONMENT": spec.environment,
            "MLCD_IMAGE": spec.image or "",
            "MLCD_MODEL_URI": spec.model_uri or "",
            "MLCD_MODEL_NAME": spec.model_name or "",
            "MLCD_MODEL_VERSION": spec.model_version or "",
            "MLCD_LINEAGE_ID": spec.lineage_id or "",
            "MLCD_PREVIOUS_IMAGE": prev.get("image") or "",
            "MLCD_PREVIOUS_MODEL_VERSION": prev.get("model_version") or "",
        }
        values = self._run(command, env, "deploy")
        url = values.get("url") or self.options.get("url")
        if not url:
            raise StageFailed("deploy hook gave no URL: write 'url=<url>' to $MLCD_DEPLOY_OUTPUT "
                              "or pass --service-url")
        if self.options.get("wait", True):
            wait_healthy(url.rstrip("/"), spec.health_timeout, what="deployed app")
        return Deployment(spec.environment, self.name, url.rstrip("/"), image=spec.image,
                          model_uri=spec.model_uri, model_name=spec.model_name,
                          model_version=spec.model_version, lineage_id=spec.lineage_id,
                          handle={k: v for k, v in values.items() if k != "url"},
                          deployed_at=now_iso())

    def stop(self, deployment: Deployment) -> None:
        command = self.options.get("stop_command")
        if not command:
            return
        self._run(command, {"MLCD_ACTION": "stop", "MLCD_ENVIRONMENT": deployment.environment,
                            "MLCD_IMAGE": deployment.image or "",
                            "MLCD_MODEL_VERSION": deployment.model_version or "",
                            **{f"MLCD_HANDLE_{k.upper()}": str(v)
                               for k, v in deployment.handle.items()}}, "stop")

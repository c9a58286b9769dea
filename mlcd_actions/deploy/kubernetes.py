"""``kubernetes``: generated Deployment and Service manifests applied with ``kubectl``.

``kubectl apply`` then ``kubectl rollout status`` (bounded by the health timeout): the
Deployment's rolling update keeps the old pods serving until the new ones are ready
(readiness probe on ``/health``). The manifests are written beside the deployment
state so a person can read what was applied. Options: ``namespace``, ``kubectl``
(the binary), ``context``, ``replicas``, ``url`` (how clients reach the Service; default
the in-cluster DNS name).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from mlcd_actions.core.errors import ConfigError, ServiceError, StageFailed
from mlcd_actions.core.files import write_text
from mlcd_actions.deploy.base import STATE_DIR, Deployment, DeploySpec, Target, now_iso


def app_name(environment: str, model_name: str | None) -> str:
    base = f"mlcd-{model_name or 'app'}-{environment}".lower()
    return re.sub(r"[^a-z0-9-]", "-", base)[:63].strip("-")


def manifests(spec: DeploySpec, *, name: str, namespace: str, replicas: int = 2) -> list[dict]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "mlcd",
              "mlcd/environment": spec.environment}
    annotations = {k: str(v) for k, v in {
        "mlcd/model-name": spec.model_name, "mlcd/model-version": spec.model_version,
        "mlcd/lineage-id": spec.lineage_id, "mlcd/image": spec.image}.items() if v}
    probe = {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 5,
             "failureThreshold": 3}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [{
                        "name": "app", "image": spec.image,
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "readinessProbe": {**probe, "initialDelaySeconds": 5},
                        "livenessProbe": {**probe, "initialDelaySeconds": 30},
                        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                    }],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"selector": {"app.kubernetes.io/name": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    return [deployment, service]


class KubernetesTarget(Target):
    name = "kubernetes"
    needs = "image"

    def _kubectl(self, *args: str, timeout: float = 300) -> str:
        exe = self.options.get("kubectl") or shutil.which("kubectl")
        if not exe:
            raise ConfigError("--target kubernetes needs kubectl on PATH")
        cmd = [exe, *args]
        if self.options.get("context"):
            cmd[1:1] = ["--context", self.options["context"]]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise StageFailed(f"kubectl {' '.join(args[:2])} timed out after {timeout:.0f}s") \
                from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            err = ServiceError if "Unable to connect" in proc.stderr else StageFailed
            raise err(f"kubectl {' '.join(args[:2])} failed: {tail[0]}")
        return proc.stdout

    def start(self, spec: DeploySpec) -> Deployment:
        if not spec.image:
            raise ConfigError("--target kubernetes needs --image")
        namespace = self.options.get("namespace") or "default"
        name = app_name(spec.environment, spec.model_name)
        candidate = spec.options.get("role") == "candidate"
        if candidate:  # a shadow/canary runs beside the serving Deployment, under its own name
            name = f"{name[:55]}-v{spec.model_version or 'next'}".lower()
        docs = manifests(spec, name=name, namespace=namespace,
                         replicas=int(self.options.get("replicas") or 2))
        path = Path(self.options.get("state_dir") or STATE_DIR) / \
            f"{spec.environment}{'-' + name if candidate else ''}.k8s.yaml"
        write_text(path, yaml.safe_dump_all(docs, sort_keys=False))
        self._kubectl("apply", "-f", str(path))
        self._kubectl("rollout", "status", f"deployment/{name}", "-n", namespace,
                      f"--timeout={int(spec.health_timeout)}s",
                      timeout=spec.health_timeout + 30)
        url = self.options.get("url") or f"http://{name}.{namespace}.svc.cluster.local"
        return Deployment(spec.environment, self.name, url, image=spec.image,
                          model_uri=spec.model_uri, model_name=spec.model_name,
                          model_version=spec.model_version, lineage_id=spec.lineage_id,
                          handle={"deployment": name, "namespace": namespace,
                                  "manifests": str(path), "owned": candidate},
                          deployed_at=now_iso())

    def stop(self, deployment: Deployment) -> None:
        """A direct deploy replaced the old pods by a rolling update of the same
        Deployment: nothing to stop. A shadow/canary Deployment (``owned``) is deleted with
        its Service; the environment's own Deployment, replaced by a promoted candidate,
        is scaled to zero (a later direct deploy scales it up again)."""
        name, namespace = deployment.handle.get("deployment"), deployment.handle.get("namespace")
        if not name:
            return None
        if deployment.handle.get("owned"):
            self._kubectl("delete", "deployment,service", name, "-n", namespace or "default",
                          "--ignore-not-found")
        else:
            self._kubectl("scale", f"deployment/{name}", "--replicas=0", "-n",
                          namespace or "default")
        return None

    def is_running(self, deployment: Deployment) -> bool:
        return True

    def same(self, a: Deployment, b: Deployment) -> bool:
        key = ("deployment", "namespace")
        return [a.handle.get(k) for k in key] == [b.handle.get(k) for k in key]

"""Shadow and canary routing on Kubernetes: a Gateway API ``HTTPRoute`` applied by kubectl.

The route attaches to a Gateway (``--gateway NAMESPACE/NAME``, default ``mlcd-gateway``
in the deployment's namespace) and sends:

* ``direct``: every request to the serving version's Service;
* ``canary``: ``/predict`` to both Services with ``weight``\\ s (traffic in hundredths of a
  percent: 12.5% -> 1250 vs 8750), everything else to the serving version;
* ``shadow``: ``/predict`` to the serving version with a ``RequestMirror`` filter that
  copies each request to the candidate's Service.

The manifest is written to ``<state-dir>/<environment>.httproute.yaml`` (so a person can
read what was applied) and applied with ``kubectl apply``. The live traffic comparison of
``mlcd promote`` reads nginx's access log; on Kubernetes it has no such log, so there
promote's traffic gates count as unmeasured (see docs/promotion.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.files import write_text
from mlcd_actions.deploy.base import STATE_DIR
from mlcd_actions.deploy.router import CANARY, SHADOW, Route, RouterState

_SVC = re.compile(r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9-]+)\.svc"
                  r"(\.cluster\.local)?(:(?P<port>\d+))?$")


def service_ref(url: str) -> dict[str, Any]:
    """``http://NAME.NS.svc.cluster.local[:PORT]`` -> a Gateway API backendRef."""
    host = url.split("://", 1)[-1].rstrip("/")
    m = _SVC.match(host)
    if not m:
        raise ConfigError(f"{url}: not a Kubernetes Service URL (NAME.NAMESPACE.svc...); "
                          "shadow/canary on kubernetes route between Services")
    return {"name": m["name"], "namespace": m["ns"], "port": int(m["port"] or 80)}


def httproute(route: Route, *, name: str, namespace: str, gateway: str | None = None,
              environment: str = "") -> dict[str, Any]:
    route.check()
    gw_ns, _, gw_name = (gateway or "").rpartition("/")
    parent = {"name": gw_name or "mlcd-gateway", "namespace": gw_ns or namespace}
    serving = service_ref(route.serving)
    everything = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                  "backendRefs": [serving]}
    predict_match = [{"path": {"type": "Exact", "value": "/predict"}}]
    rules = []
    if route.strategy == CANARY:
        share = int(round(route.traffic * 100))
        rules.append({"matches": predict_match,
                      "backendRefs": [{**serving, "weight": 10000 - share},
                                      {**service_ref(route.candidate), "weight": share}]})
    elif route.strategy == SHADOW:
        rules.append({"matches": predict_match,
                      "filters": [{"type": "RequestMirror",
                                   "requestMirror": {"backendRef": service_ref(route.candidate)}}],
                      "backendRefs": [serving]})
    rules.append(everything)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "mlcd",
                                "mlcd/environment": environment},
                     "annotations": {"mlcd/strategy": route.strategy}},
        "spec": {"parentRefs": [parent], "rules": rules},
    }


class GatewayRouter:
    """Apply the environment's HTTPRoute through the kubernetes target's kubectl."""

    def __init__(self, environment: str, state_dir: str = STATE_DIR,
                 options: dict[str, Any] | None = None) -> None:
        self.environment = environment
        self.state_dir = state_dir
        self.options = dict(options or {})

    def apply(self, route: Route, *, current: RouterState | None = None,
              host: str = "127.0.0.1", port: int | None = None,
              new_log: bool = False) -> RouterState:
        from mlcd_actions.deploy.kubernetes import KubernetesTarget

        namespace = self.options.get("namespace") or "default"
        name = re.sub(r"[^a-z0-9-]", "-", f"mlcd-{self.environment}".lower())[:63]
        doc = httproute(route, name=name, namespace=namespace,
                        gateway=self.options.get("gateway"), environment=self.environment)
        path = Path(self.state_dir) / f"{self.environment}.httproute.yaml"
        write_text(path, yaml.safe_dump(doc, sort_keys=False))
        KubernetesTarget(**self.options)._kubectl("apply", "-f", str(path))
        url = self.options.get("url") or (current.url if current else route.serving)
        return RouterState(url=url, listen="", prefix=str(path.parent), conf=str(path),
                           access_log="", strategy=route.strategy, serving=route.serving,
                           candidate=route.candidate, traffic=route.traffic)

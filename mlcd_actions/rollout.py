"""Shadow and canary rollouts, shared by ``deploy``, ``promote`` and ``rollback``.

``deploy --strategy shadow|canary`` starts the candidate beside the serving version and
puts the environment's router in front of both (nginx for ``local`` and ``docker``,
Gateway API manifests for ``kubernetes``); the deployment record then holds the
``candidate`` and the ``rollout`` (strategy, traffic, start, history head). ``promote``
judges the candidate on the traffic seen since (:mod:`mlcd_actions.deploy.traffic`), then
either makes it the environment's version — history entry and alias first (check-and-set,
:mod:`mlcd_actions.history`), then the route, then the old version is stopped — or
aborts it. ``rollback`` aborts a running rollout: the route goes back to the serving
version alone, then the candidate is stopped. The serving version answers throughout.
"""

from __future__ import annotations

import time
from typing import Any

from mlcd_actions import history, overrides
from mlcd_actions.deploy import get_target
from mlcd_actions.deploy.base import Deployment, save_state
from mlcd_actions.deploy.router import DIRECT, Route, RouterState
from mlcd_actions.errors import ConfigError


def router_for(target: str, environment: str, state_dir: str, options: dict[str, Any]):
    if target == "kubernetes":
        from mlcd_actions.deploy.gateway import GatewayRouter

        return GatewayRouter(environment, state_dir, options)
    from mlcd_actions.deploy.router import NginxRouter

    return NginxRouter(environment, state_dir, nginx=options.get("nginx"))


def route(environment: str, target: str, state: dict[str, Any], state_dir: str,
          options: dict[str, Any], new_route: Route, *, host: str = "127.0.0.1",
          port: int | None = None, new_log: bool = False) -> RouterState:
    current = RouterState.from_dict(state.get("router"))
    return router_for(target, environment, state_dir, options).apply(
        new_route, current=current, host=host, port=port, new_log=new_log)


def route_direct(environment: str, serving: Deployment, state: dict[str, Any],
                 state_dir: str, options: dict[str, Any], *,
                 proxy_port: int | None = None, host: str = "127.0.0.1") -> dict[str, Any] | None:
    """When the environment has a router (or ``proxy_port`` asks for one: 0 = any free
    port), send every request to ``serving``."""
    if not state.get("router") and proxy_port is None:
        return None
    return route(environment, serving.target, state, state_dir, options, Route(serving.url),
                 host=host, port=proxy_port or None).to_dict()


def require_rollout(environment: str, state: dict[str, Any]) -> tuple[Deployment, Deployment]:
    """(serving, candidate) of the running shadow/canary, or a usage error."""
    candidate = Deployment.from_dict(state.get("candidate"))
    serving = Deployment.from_dict(state.get("current"))
    if candidate is None or serving is None or not state.get("rollout"):
        raise ConfigError(f"no shadow or canary running in {environment}: start one with "
                          "mlcd deploy --strategy shadow|canary")
    return serving, candidate


def wait_for_traffic(router: RouterState, minimum: int, timeout: float) -> int:
    """Poll the access log until the candidate saw ``minimum`` requests or ``timeout``."""
    from mlcd_actions.deploy import traffic

    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        seen = traffic.attempts(traffic.read_access_log(router.access_log), router)
        count = len(seen["candidate"])
        if count >= minimum or time.monotonic() >= deadline:
            return count
        time.sleep(0.5)


def observe(environment: str, state: dict[str, Any], options: dict[str, Any], *,
            min_requests: int, wait: float, tolerance: float) -> dict[str, Any]:
    """The traffic metrics of the running rollout."""
    from mlcd_actions.deploy import traffic

    serving, candidate = require_rollout(environment, state)
    router = RouterState.from_dict(state.get("router"))
    if router is None:
        raise ConfigError(f"{environment}: the rollout has no router record")
    wait_for_traffic(router, min_requests, wait)
    time.sleep(1.2)  # the apps flush their prediction logs every second
    lines = traffic.read_access_log(router.access_log)
    serving_rows = candidate_rows = ()
    if router.strategy == "shadow":
        serving_rows = get_target(serving.target, **options).prediction_log(serving)
        candidate_rows = get_target(candidate.target, **options).prediction_log(candidate)
    return traffic.analyse(lines, router, serving_predictions=serving_rows,
                           candidate_predictions=candidate_rows, tolerance=tolerance)


def _stop(deployment: Deployment, options: dict[str, Any], warnings: list[str]) -> None:
    try:
        get_target(deployment.target, **options).stop(deployment)
    except Exception as exc:  # noqa: BLE001 - what is serving is fine; say what was left
        warnings.append(f"deployment at {deployment.url} could not be stopped: {exc}")


def promote(environment: str, state: dict[str, Any], state_dir: str, options: dict[str, Any],
            *, alias: str, tracking_uri: str | None, reason: str,
            warnings: list[str]) -> tuple[Deployment, Deployment, str | None]:
    """Make the candidate the environment's version. Returns (new, old, alias before)."""
    from mlcd_actions import promotion

    serving, candidate = require_rollout(environment, state)
    rollout = state["rollout"]
    before = None
    if candidate.model_name and candidate.model_version:
        entry = history.new_entry(
            environment, history.PROMOTE, strategy=rollout.get("strategy", DIRECT),
            traffic=rollout.get("traffic"), reason=reason, outcome="serving",
            from_version=serving.model_version, image=candidate.image, url=candidate.url,
            lineage_id=candidate.lineage_id,
            override=[o.to_dict() for o in overrides.for_version(
                candidate.model_name, candidate.model_version, tracking_uri)])
        before = promotion.move_alias(
            candidate.model_name, alias, candidate.model_version, environment=environment,
            image=candidate.image, tracking_uri=tracking_uri, entry=entry,
            after=rollout.get("history_head"))
    else:
        warnings.append("the candidate is not a registered model version: alias and "
                        "history not updated")
    router = route_direct(environment, candidate, state, state_dir, options)
    save_state(environment, candidate, serving, state, state_dir, router=router)
    _stop(serving, options, warnings)
    return candidate, serving, before


def abort(environment: str, state: dict[str, Any], state_dir: str, options: dict[str, Any],
          *, tracking_uri: str | None, reason: str,
          warnings: list[str]) -> tuple[Deployment, Deployment]:
    """Stop the candidate; the serving version keeps (and gets all) the traffic."""
    serving, candidate = require_rollout(environment, state)
    rollout = state["rollout"]
    router = route_direct(environment, serving, state, state_dir, options)
    save_state(environment, serving, Deployment.from_dict(state.get("previous")), state,
               state_dir, router=router)
    _stop(candidate, options, warnings)
    name = candidate.model_name or serving.model_name
    history.record(name, history.new_entry(
        environment, history.ABORT, strategy=rollout.get("strategy", DIRECT),
        traffic=rollout.get("traffic"), from_version=candidate.model_version,
        to_version=serving.model_version, outcome="aborted", reason=reason,
        url=serving.url), tracking_uri, warnings)
    return serving, candidate

"""Putting a version into an environment, shared by ``deploy``, ``promote`` and ``rollback``.

:func:`deploy` is the deploy procedure (``mlcd deploy``, and ``mlcd rollback`` redeploying
the previous version). Order, so that nothing half-done is left behind: start the new
version beside the old one and wait for its health check; append the promotion-history
entry and move the environment's MLflow alias (``staging``, ``champion`` for production)
— the alias moves only after the entry won the check-and-set against the entry number
read before the new version started, so of two deploys racing for one environment the
second fails with one line and its new version is removed; save the deployment state;
only then stop the previous version. If anything before the last step fails, the new
version is removed and the old one keeps serving. When an environment has a router, a
direct deploy switches the router too (a graceful nginx reload), so clients keep one URL.

Shadow and canary rollouts:

``deploy --strategy shadow|canary`` starts the candidate beside the serving version and
puts the environment's router in front of both (nginx for ``local`` and ``docker``,
Gateway API manifests for ``kubernetes``); the deployment record then holds the
``candidate`` and the ``rollout`` (strategy, traffic, start, history head). ``promote``
judges the candidate on the traffic seen since (:mod:`mlcd_actions.deploy.traffic`), then
either makes it the environment's version — history entry and alias first (check-and-set,
:mod:`mlcd_actions.delivery.history`), then the route, then the old version is stopped — or
aborts it. ``rollback`` aborts a running rollout: the route goes back to the serving
version alone, then the candidate is stopped. The serving version answers throughout.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any

from mlcd_actions.core.errors import ConfigError, MlcdError
from mlcd_actions.core.results import StageResult
from mlcd_actions.delivery import history, overrides, promotion
from mlcd_actions.deploy import get_target
from mlcd_actions.deploy.base import (
    STATE_DIR,
    Deployment,
    DeploySpec,
    cleanup_on_error,
    load_state,
    now_iso,
    save_state,
)
from mlcd_actions.deploy.router import CANARY, DIRECT, STRATEGIES, Route, RouterState

log = logging.getLogger("mlcd")
_VERSION_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?$")
_ALIAS_RE = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")


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




def model_identity(model_uri: str | None, name: str | None, version: str | None,
                   tracking_uri: str | None) -> tuple[str | None, str | None]:
    """(name, version) from options, else from a ``models:/`` URI."""
    if model_uri:
        m = _VERSION_RE.match(model_uri)
        if m:
            return name or m["name"], version or m["version"]
        m = _ALIAS_RE.match(model_uri)
        if m and not version:
            v = promotion.current_version(m["name"], m["alias"], tracking_uri)
            if v is None:
                raise ConfigError(f"model {model_uri}: alias {m['alias']!r} is not set")
            return name or m["name"], v
    return name, version


def _image_identity(target_name: str, image: str | None, options: dict[str, Any]) \
        -> tuple[str | None, str | None, str | None, str | None]:
    """(model name, version, lineage id, digest) from the image labels, for container targets."""
    if not image or target_name != "docker":
        return None, None, None, None
    from mlcd_actions.delivery import images

    img = images.find_image(images.client(options.get("docker_host")), image)
    if img is None:
        return None, None, None, None
    labels = img.labels or {}
    return (labels.get("mlcd.model.name"), labels.get("mlcd.model.version"),
            labels.get("mlcd.lineage_id"), img.id)


def deploy(*, environment: str, target: str = "local", image: str | None = None,
        model_uri: str | None = None, name: str | None = None,
        model_version: str | None = None, alias: str | None = None,
        host: str = "127.0.0.1", port: int | None = None, health_timeout: float = 120.0,
        tracking_uri: str | None = None, state_dir: str = STATE_DIR,
        options: dict[str, Any] | None = None, move_alias: bool = True,
        previous_override: Deployment | None = None, strategy: str = DIRECT,
        traffic: float | None = None, proxy_port: int | None = None, reason: str = "",
        action: str = history.DEPLOY) -> StageResult:
    options = {k: v for k, v in (options or {}).items() if v is not None}
    options.setdefault("state_dir", state_dir)
    tgt = get_target(target, **options)
    _check_inputs(tgt, target, image, model_uri)
    _check_strategy(strategy, traffic)

    lbl_name, lbl_version, lbl_lineage, digest = _image_identity(target, image, options)
    name, model_version = model_identity(model_uri, name or lbl_name,
                                         model_version or lbl_version, tracking_uri)
    alias = promotion.alias_for(environment, alias)
    state = load_state(environment, state_dir)
    _check_no_rollout(environment, state)
    ledger_head = _history_head(name, environment, tracking_uri) if move_alias else None
    previous = previous_override or Deployment.from_dict(state.get("current"))
    spec = DeploySpec(environment, image=image, model_uri=model_uri, model_name=name,
                      model_version=model_version, lineage_id=lbl_lineage, host=host,
                      port=port, health_timeout=health_timeout, tracking_uri=tracking_uri,
                      options={"previous": previous.to_dict() if previous else {},
                               "role": "serving" if strategy == DIRECT else "candidate"})
    result = StageResult("deploy")
    if strategy != DIRECT:
        _check_beside(environment, strategy, previous, name, model_version)
    try:
        new = tgt.start(spec)
    except MlcdError as exc:  # the outcome goes into the history too
        history.record(name, history.new_entry(
            environment, history.FAILED, strategy=strategy, to_version=model_version,
            from_version=previous.model_version if previous else None, outcome="failed",
            reason=exc.one_line()[:500], image=image), tracking_uri)
        raise
    if strategy != DIRECT:
        return _start_rollout(result, tgt, new, previous, state, environment=environment,
                              strategy=strategy, traffic=traffic, host=host,
                              proxy_port=proxy_port, options=options, state_dir=state_dir,
                              tracking_uri=tracking_uri, head=ledger_head, reason=reason,
                              alias=alias)
    previous_version = previous.model_version if previous else None
    with cleanup_on_error(tgt, new):
        moved = False
        if name and model_version and move_alias:
            entry = history.new_entry(environment, action, strategy=DIRECT, reason=reason,
                                      outcome="serving", image=image, digest=digest,
                                      url=new.url, lineage_id=lbl_lineage,
                                      from_version=previous_version)
            before = promotion.move_alias(name, alias, model_version, environment=environment,
                                          image=image, digest=digest,
                                          tracking_uri=tracking_uri, entry=entry,
                                          after=ledger_head)
            moved = True
            previous_version = before or previous_version
            result.details["alias"] = {"name": name, "alias": alias, "version": model_version,
                                       "previous": before}
            result.details["history"] = entry.to_dict()
        elif move_alias:
            result.warnings.append(
                f"model is not registered (no name/version): alias {alias!r} not moved; "
                "pass --name and --model-version, or a models:/ URI")
        try:
            router = route_direct(environment, new, state, state_dir, options,
                                  proxy_port=proxy_port, host=host)
            save_state(environment, new, previous, state, state_dir, router=router)
        except BaseException:
            if moved:
                promotion.restore_alias(name, alias, result.details["alias"]["previous"],
                                        tracking_uri)
            raise
    if previous and not tgt.same(previous, new):
        try:
            get_target(previous.target, **options).stop(previous)
        except Exception as exc:  # noqa: BLE001 - the new version serves; say what was left
            result.warnings.append(f"previous deployment at {previous.url} could not be "
                                   f"stopped: {exc}")
    what = f"{name} v{model_version}" if name and model_version else (image or model_uri)
    url = (router or {}).get("url") or new.url
    result.reason = (f"{what} serving in {environment} at {url}"
                     + (f" (was v{previous_version})" if previous_version else ""))
    result.outputs = {"url": url, "environment": environment, "target": target,
                      "model-version": model_version or "", "previous-version":
                      previous_version or "", "alias": alias, "image": image or "",
                      "deploy-strategy": DIRECT, "app-url": new.url}
    result.lineage = {k: v for k, v in {"model_name": name, "model_version": model_version,
                                        "image": image, "image_digest": digest,
                                        "id": lbl_lineage}.items() if v}
    result.details["deployment"] = new.to_dict()
    with contextlib.suppress(Exception):
        log.info("deploy %s: %s", environment, new.to_dict())
    return result


def _check_inputs(tgt, target: str, image: str | None, model_uri: str | None) -> None:
    if tgt.needs == "image" and not image:
        raise ConfigError(f"--target {target} deploys an image: pass --image")
    if tgt.needs == "model_uri" and not model_uri:
        raise ConfigError(f"--target {target} runs the model directly: pass --model-uri")
    if tgt.needs == "either" and not (image or model_uri):
        raise ConfigError(f"--target {target} needs --image or --model-uri")


def _check_beside(environment: str, strategy: str, previous: Deployment | None,
                  name: str | None, model_version: str | None) -> None:
    """A shadow/canary compares the candidate with a different version that serves."""
    if previous is None:
        raise ConfigError(f"nothing serves in {environment} yet: a {strategy} needs a "
                          "current version (deploy the first one with --strategy direct)")
    if name and model_version and previous.model_version == str(model_version):
        raise ConfigError(f"v{model_version} already serves in {environment}: a "
                          f"{strategy} compares two different versions")


def _check_strategy(strategy: str, traffic: float | None) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy == CANARY and (traffic is None or not 0 < traffic < 100):
        raise ConfigError("--strategy canary needs --traffic PERCENT, more than 0 and less "
                          "than 100")
    if strategy != CANARY and traffic is not None:
        raise ConfigError(f"--traffic is for --strategy canary, not {strategy}")


def _check_no_rollout(environment: str, state: dict[str, Any]) -> None:
    cand = Deployment.from_dict(state.get("candidate"))
    if cand is not None:
        what = (state.get("rollout") or {}).get("strategy", "rollout")
        who = f"v{cand.model_version}" if cand.model_version else cand.url
        raise ConfigError(f"a {what} of {who} runs in {environment}: finish it with "
                          "mlcd promote or mlcd rollback first")


def _history_head(name: str | None, environment: str, tracking_uri: str | None) -> int | None:
    """The environment's newest history entry, read before anything starts: a promotion
    that another one overtakes in the meantime loses (see mlcd_actions.delivery.history)."""
    if not name:
        return None
    try:
        return history.Ledger(name, tracking_uri).head(environment)
    except ConfigError:
        return None  # not registered: the alias move reports it


def _start_rollout(result: StageResult, tgt, new: Deployment, previous: Deployment,
                   state: dict[str, Any], *, environment: str, strategy: str,
                   traffic: float | None, host: str, proxy_port: int | None,
                   options: dict[str, Any], state_dir: str, tracking_uri: str | None,
                   head: int | None, reason: str, alias: str) -> StageResult:
    """Shadow/canary: the candidate runs beside the serving version behind the router."""
    with cleanup_on_error(tgt, new):
        router = route(environment, new.target, state, state_dir, options,
                               Route(previous.url, strategy, new.url, traffic or 0.0),
                               host=host, port=proxy_port, new_log=True)
        try:
            info = {"strategy": strategy, "traffic": traffic, "started_at": now_iso(),
                    "history_head": head, "alias": alias}
            save_state(environment, previous, Deployment.from_dict(state.get("previous")),
                       state, state_dir, candidate=new, rollout=info,
                       router=router.to_dict())
        except BaseException:
            route(environment, new.target, {"router": router.to_dict()}, state_dir,
                          options, Route(previous.url))
            raise
    entry = history.record(new.model_name, history.new_entry(
        environment, history.START, strategy=strategy, traffic=traffic, reason=reason,
        from_version=previous.model_version, to_version=new.model_version,
        outcome="candidate", image=new.image, url=new.url, lineage_id=new.lineage_id),
        tracking_uri, result.warnings)
    share = f" with {traffic:g}% of the traffic" if strategy == CANARY else \
        " receiving a copy of every request"
    what = f"v{new.model_version}" if new.model_version else (new.image or new.model_uri)
    result.reason = (f"{strategy}: {what} beside v{previous.model_version} in {environment}"
                     f"{share}; clients use {router.url}")
    result.outputs = {"url": router.url, "environment": environment, "target": new.target,
                      "model-version": new.model_version or "",
                      "previous-version": previous.model_version or "", "alias": alias,
                      "image": new.image or "", "deploy-strategy": strategy,
                      "canary-traffic": traffic if traffic is not None else "",
                      "candidate-url": new.url, "app-url": previous.url}
    result.lineage = {k: v for k, v in {"model_name": new.model_name,
                                        "model_version": new.model_version,
                                        "image": new.image, "id": new.lineage_id}.items() if v}
    result.details.update({"deployment": new.to_dict(), "router": router.to_dict(),
                           "history": entry.to_dict() if entry else None})
    return result

"""``mlcd rollback``: point the environment and its alias back at the previous version,
or abort a running shadow/canary.

While a shadow or canary runs, rollback aborts it: the router sends everything to the
serving version again, the candidate stops, the alias never moved.

Otherwise the previous version comes from the deployment state
(``.mlcd/deployments/<env>.json``) or, in a fresh CI job without that file, from the
registry: the promotion history (what served before the current version came in; a
version a rollback brought back is not rolled back to again), else the
``mlcd.previous.<alias>`` tag, and the image recorded on that version. It is redeployed
through the same target, the alias moves back, and the history records the rollback.
"""

from __future__ import annotations

from typing import Any

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.results import StageResult
from mlcd_actions.delivery import history, promotion
from mlcd_actions.deploy import rollout
from mlcd_actions.deploy.base import STATE_DIR, Deployment, load_state, locked


@locked
def run(*, environment: str, target: str | None = None, name: str | None = None,
        alias: str | None = None, tracking_uri: str | None = None,
        state_dir: str = STATE_DIR, host: str = "127.0.0.1", port: int | None = None,
        health_timeout: float = 120.0, options: dict[str, Any] | None = None,
        move_alias: bool = True, reason: str = "") -> StageResult:
    state = load_state(environment, state_dir)
    if state.get("candidate"):
        return _abort(environment, state, state_dir, options, tracking_uri, reason)
    current = Deployment.from_dict(state.get("current"))
    previous = Deployment.from_dict(state.get("previous"))
    alias = promotion.alias_for(environment, alias)
    name = name or (current.model_name if current else None) or \
        (previous.model_name if previous else None)

    if previous is None:
        if not name:
            raise ConfigError(f"nothing to roll back to in {environment}: no previous "
                              f"deployment recorded and no --name to look it up in the registry")
        ledger = history.Ledger(name, tracking_uri)
        if ledger.serving(environment) is not None:  # the history knows: trust it alone
            version = ledger.previous(environment)
        else:  # deployed before the history existed
            version = promotion.previous_version(name, alias, tracking_uri)
        if not version:
            raise ConfigError(f"nothing to roll back to in {environment}: model {name!r} has "
                              f"no previous version recorded for alias {alias!r} (a version "
                              "a rollback took out is not brought back)")
        recorded = promotion.deployed_image(name, version, environment, tracking_uri) or {}
        tgt_name = target or (current.target if current else None) or \
            ("docker" if recorded.get("image") else "local")
        previous = Deployment(environment, tgt_name, "", image=recorded.get("image"),
                              model_uri=f"models:/{name}/{version}", model_name=name,
                              model_version=version)
    tgt_name = target or previous.target
    result = rollout.deploy(
        environment=environment, target=tgt_name, image=previous.image,
        model_uri=previous.model_uri, name=previous.model_name or name,
        model_version=previous.model_version, alias=alias, host=host, port=port,
        health_timeout=health_timeout, tracking_uri=tracking_uri, state_dir=state_dir,
        options=options, previous_override=current, move_alias=move_alias,
        action=history.ROLLBACK, reason=reason or "rollback")
    result.stage = "rollback"
    from_v = current.model_version if current else None
    to_v = previous.model_version
    result.reason = (f"{environment} rolled back to "
                     f"{'v' + to_v if to_v else previous.image or previous.model_uri}"
                     + (f" from v{from_v}" if from_v else "") + f" at {result.outputs['url']}")
    result.outputs["rolled-back-from"] = from_v or ""
    return result


def _abort(environment: str, state: dict[str, Any], state_dir: str,
           options: dict[str, Any] | None, tracking_uri: str | None, reason: str) -> StageResult:
    options = {k: v for k, v in (options or {}).items() if v is not None}
    options.setdefault("state_dir", state_dir)
    result = StageResult("rollback")
    strategy = (state.get("rollout") or {}).get("strategy", "rollout")
    serving, candidate = rollout.abort(environment, state, state_dir, options,
                                       tracking_uri=tracking_uri,
                                       reason=reason or f"{strategy} aborted",
                                       warnings=result.warnings)
    url = (state.get("router") or {}).get("url") or serving.url
    result.reason = (f"{strategy} of v{candidate.model_version} aborted in {environment}; "
                     f"v{serving.model_version} keeps serving at {url}")
    result.outputs = {"url": url, "environment": environment,
                      "model-version": serving.model_version or "",
                      "rolled-back-from": candidate.model_version or "", "aborted": True}
    result.lineage = {k: v for k, v in {"model_name": serving.model_name,
                                        "model_version": serving.model_version}.items() if v}
    return result

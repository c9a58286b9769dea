"""``mlcd rollback``: point the environment and its alias back at the previous version.

The previous version comes from the deployment state (``.mlcd/deployments/<env>.json``)
or, in a fresh CI job without that file, from the registry (the ``mlcd.previous.<alias>``
tag and the image recorded on that version). It is redeployed through the same target,
and the alias moves back.
"""

from __future__ import annotations

from typing import Any

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.results import StageResult
from mlcd_actions.delivery import promotion
from mlcd_actions.deploy.base import STATE_DIR, Deployment, load_state, locked
from mlcd_actions.stages import deploy as deploy_stage


@locked
def run(*, environment: str, target: str | None = None, name: str | None = None,
        alias: str | None = None, tracking_uri: str | None = None,
        state_dir: str = STATE_DIR, host: str = "127.0.0.1", port: int | None = None,
        health_timeout: float = 120.0, options: dict[str, Any] | None = None,
        move_alias: bool = True) -> StageResult:
    state = load_state(environment, state_dir)
    current = Deployment.from_dict(state.get("current"))
    previous = Deployment.from_dict(state.get("previous"))
    alias = promotion.alias_for(environment, alias)
    name = name or (current.model_name if current else None) or \
        (previous.model_name if previous else None)

    if previous is None:
        if not name:
            raise ConfigError(f"nothing to roll back to in {environment}: no previous "
                              f"deployment recorded and no --name to look it up in the registry")
        version = promotion.previous_version(name, alias, tracking_uri)
        if not version:
            raise ConfigError(f"nothing to roll back to in {environment}: model {name!r} has "
                              f"no previous version recorded for alias {alias!r}")
        recorded = promotion.deployed_image(name, version, environment, tracking_uri) or {}
        tgt_name = target or (current.target if current else None) or \
            ("docker" if recorded.get("image") else "local")
        previous = Deployment(environment, tgt_name, "", image=recorded.get("image"),
                              model_uri=f"models:/{name}/{version}", model_name=name,
                              model_version=version)
    tgt_name = target or previous.target
    result = deploy_stage.run(
        environment=environment, target=tgt_name, image=previous.image,
        model_uri=previous.model_uri, name=previous.model_name or name,
        model_version=previous.model_version, alias=alias, host=host, port=port,
        health_timeout=health_timeout, tracking_uri=tracking_uri, state_dir=state_dir,
        options=options, previous_override=current, move_alias=move_alias)
    result.stage = "rollback"
    from_v = current.model_version if current else None
    to_v = previous.model_version
    result.reason = (f"{environment} rolled back to "
                     f"{'v' + to_v if to_v else previous.image or previous.model_uri}"
                     + (f" from v{from_v}" if from_v else "") + f" at {result.outputs['url']}")
    result.outputs["rolled-back-from"] = from_v or ""
    return result

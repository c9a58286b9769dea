"""``mlcd deploy``: put a version into an environment through a deploy target adapter.

Order, so that nothing half-done is left behind: start the new version beside the old
one and wait for its health check; move the environment's MLflow alias (``staging``,
``champion`` for production) recording the previous version; save the deployment
state; only then stop the previous version. If anything before the last step fails,
the new version is removed and the old one keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.results import StageResult
from mlcd_actions.delivery import promotion
from mlcd_actions.deploy import get_target
from mlcd_actions.deploy.base import (
    STATE_DIR,
    Deployment,
    DeploySpec,
    cleanup_on_error,
    load_state,
    locked,
    save_state,
)

log = logging.getLogger("mlcd")
_VERSION_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?$")
_ALIAS_RE = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")


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


@locked
def run(*, environment: str, target: str = "local", image: str | None = None,
        model_uri: str | None = None, name: str | None = None,
        model_version: str | None = None, alias: str | None = None,
        host: str = "127.0.0.1", port: int | None = None, health_timeout: float = 120.0,
        tracking_uri: str | None = None, state_dir: str = STATE_DIR,
        options: dict[str, Any] | None = None, move_alias: bool = True,
        previous_override: Deployment | None = None) -> StageResult:
    options = {k: v for k, v in (options or {}).items() if v is not None}
    options.setdefault("state_dir", state_dir)
    tgt = get_target(target, **options)
    if tgt.needs == "image" and not image:
        raise ConfigError(f"--target {target} deploys an image: pass --image")
    if tgt.needs == "model_uri" and not model_uri:
        raise ConfigError(f"--target {target} runs the model directly: pass --model-uri")
    if tgt.needs == "either" and not (image or model_uri):
        raise ConfigError(f"--target {target} needs --image or --model-uri")

    lbl_name, lbl_version, lbl_lineage, digest = _image_identity(target, image, options)
    name, model_version = model_identity(model_uri, name or lbl_name,
                                         model_version or lbl_version, tracking_uri)
    alias = promotion.alias_for(environment, alias)
    state = load_state(environment, state_dir)
    previous = previous_override or Deployment.from_dict(state.get("current"))
    spec = DeploySpec(environment, image=image, model_uri=model_uri, model_name=name,
                      model_version=model_version, lineage_id=lbl_lineage, host=host,
                      port=port, health_timeout=health_timeout, tracking_uri=tracking_uri,
                      options={"previous": previous.to_dict() if previous else {}})
    new = tgt.start(spec)
    result = StageResult("deploy")
    previous_version = previous.model_version if previous else None
    with cleanup_on_error(tgt, new):
        moved = False
        if name and model_version and move_alias:
            before = promotion.move_alias(name, alias, model_version, environment=environment,
                                          image=image, digest=digest,
                                          tracking_uri=tracking_uri)
            moved = True
            previous_version = before or previous_version
            result.details["alias"] = {"name": name, "alias": alias, "version": model_version,
                                       "previous": before}
        elif move_alias:
            result.warnings.append(
                f"model is not registered (no name/version): alias {alias!r} not moved; "
                "pass --name and --model-version, or a models:/ URI")
        try:
            save_state(environment, new, previous, state, state_dir)
        except BaseException:
            if moved:
                promotion.restore_alias(name, alias, result.details["alias"]["previous"],
                                        tracking_uri)
            raise
    if previous and previous.handle != new.handle:
        try:
            get_target(previous.target, **options).stop(previous)
        except Exception as exc:  # noqa: BLE001 - the new version serves; say what was left
            result.warnings.append(f"previous deployment at {previous.url} could not be "
                                   f"stopped: {exc}")
    what = f"{name} v{model_version}" if name and model_version else (image or model_uri)
    result.reason = (f"{what} serving in {environment} at {new.url}"
                     + (f" (was v{previous_version})" if previous_version else ""))
    result.outputs = {"url": new.url, "environment": environment, "target": target,
                      "model-version": model_version or "", "previous-version":
                      previous_version or "", "alias": alias, "image": image or ""}
    result.lineage = {k: v for k, v in {"model_name": name, "model_version": model_version,
                                        "image": image, "image_digest": digest,
                                        "id": lbl_lineage}.items() if v}
    result.details["deployment"] = new.to_dict()
    with contextlib.suppress(Exception):
        log.info("deploy %s: %s", environment, new.to_dict())
    return result

"""``mlcd history``: the promotion history of an environment, from the registry.

Every alias move and deploy outcome recorded by ``deploy``, ``promote`` and ``rollback``
(:mod:`mlcd_actions.delivery.history`): time, version from -> to, strategy, actor, reason, run URL
and the overrides the version carried. The model comes from ``--name`` or the
environment's deployment record. Also says what serves now, and checks that the registry
alias, the history, the deployed app's ``/metadata`` and (docker target) the image labels
agree.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.results import StageResult, Table
from mlcd_actions.delivery import history, promotion
from mlcd_actions.deploy.base import STATE_DIR, Deployment, load_state

STAGE = "history"


def _served_version(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metadata", timeout=5) as resp:  # noqa: S310
            return str(json.load(resp).get("model_version"))
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None


def _label_version(image: str, docker_host: str | None) -> str | None:
    """The model version in the image's labels (what build-app baked in)."""
    import contextlib

    with contextlib.suppress(Exception):
        from mlcd_actions.delivery import images

        found = images.find_image(images.client(docker_host), image)
        return (found.labels or {}).get("mlcd.model.version") if found is not None else None
    return None


def run(*, environment: str, name: str | None = None, alias: str | None = None,
        limit: int = 50, tracking_uri: str | None = None,
        state_dir: str = STATE_DIR) -> StageResult:
    state = load_state(environment, state_dir)
    current = Deployment.from_dict(state.get("current"))
    name = name or (current.model_name if current else None)
    if not name:
        raise ConfigError(f"which model? pass --name (no deployment of {environment} is "
                          "recorded here to read it from)")
    ledger = history.Ledger(name, tracking_uri)
    entries = ledger.entries(environment)
    alias = promotion.alias_for(environment, alias)
    result = StageResult(STAGE)
    shown = entries[-limit:] if limit else entries
    result.tables.append(Table(f"promotion history of {name} in {environment}",
                               history.COLUMNS, history.table_rows(reversed(shown)),
                               note=None if len(shown) == len(entries) else
                               f"newest {len(shown)} of {len(entries)} entries"))
    serving = ledger.serving(environment)
    alias_version = promotion.current_version(name, alias, tracking_uri)
    agree = {"history": serving.to_version if serving else None, "alias": alias_version}
    url = (state.get("router") or {}).get("url") or (current.url if current else None)
    if url:
        agree["metadata"] = _served_version(url)
    if current is not None and current.target == "docker" and current.image:
        agree["image"] = _label_version(current.image, current.handle.get("docker_host"))
    disagree = {k: v for k, v in agree.items() if v is not None}
    if len(set(disagree.values())) > 1:
        result.warnings.append("history, alias and the running app disagree: "
                               + ", ".join(f"{k} v{v}" for k, v in disagree.items()))
    result.details.update({"model": name, "environment": environment, "alias": alias,
                           "entries": [e.to_dict() for e in entries], "agreement": agree})
    result.outputs.update({"model-version": (serving.to_version if serving else "") or "",
                           "entries": len(entries), "name": name})
    result.metrics["entries"] = len(entries)
    if not entries:
        result.reason = f"no promotion history for {name} in {environment} yet"
    else:
        last = entries[-1]
        result.reason = (f"{len(entries)} entries for {name} in {environment}; serving "
                         f"v{agree['history'] or '?'}; last: {last.action} {last.change()} "
                         f"by {last.actor} at {last.time}")
    return result


def text(result: StageResult) -> str:
    """The history as plain lines for a terminal (newest first)."""
    table = result.tables[0] if result.tables else None
    if table is None or not table.rows:
        return ""
    lines = [table.title]
    for row in table.rows:
        seq, when, _env, action, strategy, change, moved, outcome, actor, reason, url, ov = row
        line = f"  #{seq} {when} {action:<8} {change:<14} {strategy:<12} {actor}"
        if reason:
            line += f" — {reason}"
        if ov:
            line += f" [override: {ov}]"
        if url:
            line += f" <{url}>"
        lines.append(line)
    return "\n".join(lines)

"""``mlcd register``: put a trained model into the MLflow registry, with lineage.

Steps, each retried with backoff while the tracking server is briefly unavailable
(:func:`mlcd_actions.models.tracking.with_retries`; exit 3 when it stays down):

1. read the run that logged the model (``runs:/<run_id>/<path>`` or ``models:/m-<id>``)
   and its lineage tags (``mlcd.lineage_id``, data version and sha256, git SHA, code
   version, written by ``mlcd train``);
2. find the version of ``name`` already made from that run and model (idempotent: the same
   run registered twice gives the same version), else create the registered model (when
   new) and the version, and wait until it is READY;
3. tag the version: lineage, and the verdicts of ``evaluate`` and ``check-fairness`` read
   from ``<report-dir>/evaluate.json`` / ``check-fairness.json`` when they are bound to
   this model (the report's ``lineage.run_id`` and ``lineage.id`` are the run's) and
   finished (passed or failed); any other report is ignored with a warning, never tagged;
4. only then set the alias (default ``candidate``), and only when no verdict on the
   version says failed: then the stage fails (exit 1) with the version registered and
   tagged and the alias where it was. A failure before this step leaves no alias pointing
   at a half-tagged version.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from mlcd_actions.ci.lineage import Lineage
from mlcd_actions.core.errors import ConfigError, ServiceError, StageFailed
from mlcd_actions.core.results import FAILED, StageResult, Table
from mlcd_actions.delivery import overrides
from mlcd_actions.models import tracking

log = logging.getLogger("mlcd")

STAGE = "register"
VERDICT_STAGES = ("evaluate", "check-fairness")
_RUN_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+?)/?$")
_MODEL_ID_URI = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)/?$")
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(v\d+|latest)$", re.IGNORECASE)
READY_WAIT = 300.0


def _not_found(exc: BaseException) -> bool:
    text = f"{getattr(exc, 'error_code', '')} {exc}"
    return "RESOURCE_DOES_NOT_EXIST" in text or "NOT_FOUND" in text or "not found" in text.lower()


def _already_exists(exc: BaseException) -> bool:
    text = f"{getattr(exc, 'error_code', '')} {exc}"
    return "RESOURCE_ALREADY_EXISTS" in text or "ALREADY_EXISTS" in text or "already exists" in text


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


class _Registry:
    def __init__(self, uri: str, explicit: str | None = None) -> None:
        from mlcd_actions.models import tracking_rest

        self.uri = uri
        # a tracking server: plain REST calls, no mlflow import (1.5-2 s of a CI step)
        self.client = tracking_rest.client_for(uri, tracking.registry_uri(uri))
        if self.client is None:
            from mlflow import MlflowClient

            tracking.configure(explicit)
            self.client = MlflowClient(uri, tracking.registry_uri(uri))
        else:
            tracking.env_defaults()

    def call(self, what: str, fn):
        return tracking.with_retries(fn, what=what, uri=self.uri)


def _resolve(reg: _Registry, model_uri: str) -> tuple[Any, str, str | None]:
    """(run, source, model_id) for a ``runs:/`` or ``models:/m-...`` URI."""
    m = _RUN_URI.match(model_uri)
    model_id = None
    if m:
        run_id, path = m["run_id"], m["path"]
    else:
        mid = _MODEL_ID_URI.match(model_uri)
        if not mid:
            raise ConfigError(f"--model-uri {model_uri!r}: register takes the URI train gives "
                              "(runs:/<run_id>/model) or a logged model (models:/m-<id>)")
        model_id = mid["model_id"]
        try:
            logged = reg.call("reading the logged model",
                              lambda: reg.client.get_logged_model(model_id))
        except ServiceError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified
            if _not_found(exc):
                raise ConfigError(f"--model-uri {model_uri}: no such logged model") from exc
            raise
        if not logged.source_run_id:
            raise ConfigError(f"--model-uri {model_uri}: the logged model has no run; "
                              "register a model logged by mlcd train")
        run_id, path = logged.source_run_id, logged.name
    try:
        run = reg.call("reading the run", lambda: reg.client.get_run(run_id))
    except ServiceError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified
        if _not_found(exc):
            raise ConfigError(f"--model-uri {model_uri}: run {run_id} not found on "
                              f"{reg.uri}") from exc
        raise
    if run.info.status != "FINISHED":
        raise StageFailed(f"--model-uri {model_uri}: run {run_id} is {run.info.status}, not "
                          "FINISHED; register only a model whose training succeeded")
    if model_id is None:
        def search():
            return list(reg.client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"name = '{_quote(path)}'", max_results=100))

        candidates = [lm for lm in reg.call("finding the logged model", search)
                      if lm.source_run_id == run_id]
        if candidates:
            model_id = max(candidates, key=lambda lm: lm.creation_timestamp or 0).model_id
        else:
            raise ConfigError(f"--model-uri {model_uri}: run {run_id} has no model "
                              f"named {path!r}")
    return run, f"models:/{model_id}", model_id


def _create(reg: _Registry, name: str, run_id: str, model_id: str | None, source: str,
            tags: dict[str, str]):
    """Find or create the version, in one retried step: a retry after a lost answer finds
    the version the first attempt created instead of making a second one."""

    sent = []  # a create request went out: a version found after it is this run's

    def attempt():
        existing = _find_existing_once(reg, name, run_id, model_id, source)
        if existing is not None:
            return existing, bool(sent)
        try:
            reg.client.create_registered_model(name)
        except Exception as exc:  # noqa: BLE001 - classified
            if not _already_exists(exc):
                raise
        kwargs = {"model_id": model_id} if model_id else {}
        sent.append(True)
        version = reg.client.create_model_version(name, source, run_id=run_id, tags=tags,
                                                  **kwargs)
        return version, True

    return reg.call(f"registering {name}", attempt)


def _find_existing_once(reg: _Registry, name: str, run_id: str, model_id: str | None,
                        source: str):
    found = reg.client.search_model_versions(
        f"name = '{_quote(name)}' and run_id = '{run_id}'")
    same = [v for v in found
            if v.source == source or (model_id and getattr(v, "model_id", None) == model_id)]
    return min(same, key=lambda v: int(v.version)) if same else None


def _await_ready(reg: _Registry, name: str, version: str, timeout: float = READY_WAIT):
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        mv = reg.call("waiting for the version",
                      lambda: reg.client.get_model_version(name, version))
        status = str(getattr(mv, "status", "READY"))
        if status.endswith("READY") and "PENDING" not in status:
            return mv
        if "FAILED" in status:
            raise StageFailed(f"model {name} version {version} failed to register: "
                              f"{getattr(mv, 'status_message', '') or status}")
        if time.monotonic() > deadline:
            raise ServiceError(f"model {name} version {version} still {status} after "
                               f"{timeout:g}s on {reg.uri}")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _delete_tag(reg: _Registry, name: str, version: str, key: str) -> None:
    """Delete a version tag; already gone counts as done (a retry after a lost answer)."""
    try:
        reg.client.delete_model_version_tag(name, version, key)
    except Exception as exc:  # noqa: BLE001 - classified
        if not _not_found(exc):
            raise


FINISHED_STATUSES = ("passed", "failed")


def _verdicts(report_dir: str | os.PathLike, run_id: str, lineage_id: str | None,
              result: StageResult) -> dict[str, dict[str, str]]:
    """``{stage: tags}`` from the verdict reports bound to this model.

    A report is applied only when it is bound to the model being registered (its
    ``lineage.run_id`` is the run and its ``lineage.id`` the run's ``mlcd.lineage_id``) and
    its evaluation finished (status passed or failed). Anything else (a report about
    another model, one that ended in an error before it knew its model, a skipped one) is
    ignored with a warning and never written as tags.
    """
    found: dict[str, dict[str, str]] = {}
    for stage in VERDICT_STAGES:
        path = Path(report_dir) / f"{stage}.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            result.warnings.append(f"{path}: unreadable report, verdict not tagged ({exc})")
            continue
        about = data.get("lineage") if isinstance(data.get("lineage"), dict) else {}
        status = str(data.get("status", "unknown"))
        other_run, other_id = about.get("run_id"), about.get("id")
        if not other_run:
            result.warnings.append(f"{path} ({status}) names no model run: verdict not "
                                   "tagged")
            continue
        if other_run != run_id or (other_id or None) != (lineage_id or None):
            what = f"run {other_run}" + (f", lineage {other_id}" if other_id else "")
            mine = f"run {run_id}" + (f", lineage {lineage_id}" if lineage_id else "")
            result.warnings.append(f"{path} is about {what}, not {mine}: verdict not tagged")
            continue
        if status not in FINISHED_STATUSES:
            result.warnings.append(f"{path}: {stage} did not finish (status {status!r}): "
                                   "verdict not tagged")
            continue
        tags = {f"mlcd.{stage}.status": status}
        if data.get("reason"):
            tags[f"mlcd.{stage}.reason"] = str(data["reason"])[:5000]
        for gate in data.get("gates") or []:
            metric = gate.get("metric") if isinstance(gate, dict) else None
            if metric and gate.get("verdict"):
                tags[f"mlcd.{stage}.gate.{metric}"] = str(gate["verdict"])
        found[stage] = tags
    return found


def run(model_uri: str, name: str, *, alias: str | None = "candidate",
        tracking_uri: str | None = None, report_dir: str | os.PathLike = ".mlcd/reports",
        await_seconds: float = READY_WAIT) -> StageResult:
    """Register ``model_uri`` as a version of ``name``; see the module docstring."""
    model_uri = (model_uri or "").strip()
    name = (name or "").strip()
    if not model_uri:
        raise ConfigError("--model-uri is empty")
    if not name or "/" in name or "@" in name or ":" in name:
        raise ConfigError(f"--name {name!r}: a registered model name has no '/', '@' or ':'")
    alias = (alias or "").strip() or None
    if alias is not None and (not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias)):
        raise ConfigError(f"--alias {alias!r}: letters, digits, '_' and '-' only, and not "
                          "'latest' or 'v<number>'")
    uri = tracking.tracking_uri(tracking_uri)
    reg = _Registry(uri, tracking_uri)
    run, source, model_id = _resolve(reg, model_uri)
    run_id = run.info.run_id
    lineage = Lineage.from_tags(run.data.tags)
    if not run.data.tags.get("mlcd.lineage_id"):
        lineage = lineage.replace(run_id=run_id)
    result = StageResult(STAGE)

    version_tags = {k: v for k, v in lineage.to_tags().items()
                    if k not in ("mlcd.model_name", "mlcd.model_version")}
    version_tags["mlcd.run_id"] = run_id
    version_tags["mlcd.model_uri"] = model_uri
    for key in ("mlcd.task", "mlcd.label"):
        if run.data.tags.get(key):
            version_tags[key] = run.data.tags[key]
    verdicts = _verdicts(report_dir, run_id, run.data.tags.get("mlcd.lineage_id"), result)
    for tags in verdicts.values():
        version_tags.update(tags)

    mv, created = _create(reg, name, run_id, model_id, source, version_tags)
    version = str(mv.version)
    _await_ready(reg, name, version, await_seconds)
    # tags again: a version found (not created) may predate this run's verdicts
    current = dict(getattr(mv, "tags", None) or {})
    for key, value in version_tags.items():
        if current.get(key) != value:
            reg.call(f"tagging version {version}", lambda k=key, v=value:
                     reg.client.set_model_version_tag(name, version, k, v))
    for stage in verdicts:  # a newer verdict replaces the older one whole
        for key in sorted(current):
            if key.startswith(f"mlcd.{stage}.") and key not in version_tags:
                reg.call(f"tagging version {version}", lambda k=key:
                         _delete_tag(reg, name, version, k))
    effective = {**current, **version_tags}
    failed = [stage for stage in VERDICT_STAGES
              if effective.get(f"mlcd.{stage}.status") == "failed"]
    reg.call("tagging the registered model", lambda: reg.client.set_registered_model_tag(
        name, "mlcd.latest_lineage_id", lineage.id))
    copied = overrides.copy_to_version(run.data.tags, name, version, uri,  # audited overrides
                                      client=reg.client)
    if copied:
        result.details["overrides"] = [o.to_dict() for o in copied]
    if alias and not failed:
        reg.call(f"setting alias {alias}", lambda: reg.client.set_registered_model_alias(
            name, alias, version))
    try:  # best effort: the run points at its registered version too
        reg.client.set_tag(run_id, "mlcd.registered", f"{name}/{version}")
    except Exception as exc:  # noqa: BLE001 - the registration itself is complete
        log.warning("cannot tag run %s: %s", run_id, exc)

    lineage = lineage.replace(model_name=name, model_version=version, model_uri=model_uri)
    registered_uri = f"models:/{name}/{version}"
    result.lineage = lineage.to_dict()
    # outputs feed the next stage by option name (DESIGN §2): `name` is evaluate's and
    # deploy's --name; the alias is `registered-alias`, not `alias`, which would become
    # MLCD_ALIAS on GitLab and silently set deploy's --alias
    moved = alias if alias and not failed else None
    result.outputs.update({"model-version": version, "model-name": name, "name": name,
                           "registered-uri": registered_uri, "lineage-id": lineage.id,
                           **({"registered-alias": moved,
                               "alias-uri": f"models:/{name}@{moved}"} if moved else {})})
    result.details.update({"created": created, "source": source, "run_id": run_id,
                           "model_id": model_id, "tags": version_tags})
    result.tables.append(Table("Version tags", ["tag", "value"],
                               [[k, v[:120]] for k, v in sorted(version_tags.items())]))
    verb = "registered" if created else "already registered"
    at = f", alias @{moved}" if moved else ""
    result.reason = f"{model_uri} {verb} as {registered_uri}{at} (lineage {lineage.id})"
    if failed:
        result.status = FAILED
        kept = f"; alias @{alias} not moved" if alias else ""
        result.reason = (f"{' and '.join(failed)} failed for this model: {model_uri} {verb} "
                         f"as {registered_uri} (tagged){kept}")
    return result

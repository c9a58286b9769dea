"""Moving an environment's MLflow alias, remembering what it pointed at before.

Environment -> alias: ``production`` (and ``prod``) -> ``champion``; any other
environment -> its own name (``staging`` -> ``staging``). Before the alias moves, the
registered model gets the tag ``mlcd.previous.<alias>`` = the version the alias held,
and the new version gets ``mlcd.deployed.<environment>`` (time) and ``mlcd.image.<environment>``
(image and digest), so ``rollback`` finds the previous version — and its image — from
the registry alone, even in a fresh CI job.
"""

from __future__ import annotations

import datetime as _dt
import json

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.delivery import history
from mlcd_actions.models import tracking

CHAMPION_ENVIRONMENTS = ("production", "prod")


def alias_for(environment: str, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    return "champion" if environment.lower() in CHAMPION_ENVIRONMENTS else environment


def _client(tracking_uri: str | None):
    from mlflow import MlflowClient

    tracking.configure(tracking_uri)
    return MlflowClient()


def current_version(name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        mv = tracking.with_retries(lambda: client.get_model_version_by_alias(name, alias),
                                   what=f"reading alias {alias!r} of model {name!r}")
        return str(mv.version)
    except MlflowException:
        return None


def previous_version(name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    client = _client(tracking_uri)
    rm = tracking.with_retries(lambda: client.get_registered_model(name),
                               what=f"reading model {name!r}")
    return (rm.tags or {}).get(f"mlcd.previous.{alias}") or None


def deployed_image(name: str, version: str, environment: str,
                   tracking_uri: str | None = None) -> dict | None:
    client = _client(tracking_uri)
    mv = tracking.with_retries(lambda: client.get_model_version(name, version),
                               what=f"reading version {version} of model {name!r}")
    raw = (mv.tags or {}).get(f"mlcd.image.{environment}") or (mv.tags or {}).get("mlcd.image")
    return json.loads(raw) if raw else None


def move_alias(name: str, alias: str, version: str, *, environment: str,
               image: str | None = None, digest: str | None = None,
               tracking_uri: str | None = None, record_previous: bool = True,
               entry: history.Entry | None = None, after: int | None = None) -> str | None:
    """Point ``alias`` at ``version``; returns the version it pointed at before (or None).

    The new version's tags (image, deploy time) are written first; then ``entry`` is
    appended to the promotion history (check-and-set against entry number ``after``: a
    concurrent promotion that got there first makes this one fail with
    :class:`~mlcd_actions.delivery.history.Conflict` before anything moved); then the alias moves
    to the version the history says serves; then the previous version is recorded. If
    recording fails, the alias is put back.
    """
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    before = current_version(name, alias, tracking_uri)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    what = f"moving alias {alias!r} of model {name!r} to version {version}"

    def tag_version() -> None:
        client.set_model_version_tag(name, str(version), f"mlcd.deployed.{environment}", stamp)
        if image:
            payload = json.dumps({"image": image, "digest": digest})
            client.set_model_version_tag(name, str(version), f"mlcd.image.{environment}", payload)
            client.set_model_version_tag(name, str(version), "mlcd.image", payload)

    try:
        tracking.with_retries(tag_version, what=what)
        if entry is not None:
            ledger = history.Ledger(name, tracking_uri)
            entry.moves_alias = True
            entry.alias = alias
            entry.to_version = str(version)
            entry.from_version = entry.from_version or before
            ledger.append(entry, after=after)
            history.settle_alias(ledger, alias, environment)
        else:
            tracking.with_retries(lambda: client.set_registered_model_alias(
                name, alias, str(version)), what=what)
    except MlflowException as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"cannot move alias {alias!r} of model {name!r} to version "
                          f"{version}: {first}") from exc
    if record_previous and before and before != str(version):
        try:
            tracking.with_retries(lambda: client.set_registered_model_tag(
                name, f"mlcd.previous.{alias}", before), what=what)
        except BaseException:
            restore_alias(name, alias, before, tracking_uri)
            raise
    return before


def restore_alias(name: str, alias: str, before: str | None,
                  tracking_uri: str | None = None) -> None:
    """Best effort: put ``alias`` back where it was (delete it when it was unset)."""
    import contextlib

    client = _client(tracking_uri)
    with contextlib.suppress(Exception):
        if before:
            client.set_registered_model_alias(name, alias, before)
        else:
            client.delete_registered_model_alias(name, alias)

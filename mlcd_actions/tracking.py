"""MLflow tracking set-up shared by train, evaluate, check-fairness, register, deploy.

The embedded default is ``sqlite:///.mlcd/mlflow.db`` with artifacts in
``.mlcd/mlartifacts`` (DESIGN §5); any ``MLFLOW_TRACKING_URI`` (or ``--tracking-uri``)
wins. Calls that reach a tracking server go through :func:`with_retries`, which retries
briefly with backoff and raises :class:`~mlcd_actions.errors.ServiceError` (exit 3)
when the server stays down. mlflow is imported only inside functions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, TypeVar

from mlcd_actions.errors import ServiceError

DEFAULT_DIR = ".mlcd"
T = TypeVar("T")


def default_tracking_uri(base: str | os.PathLike = DEFAULT_DIR) -> str:
    path = Path(base).resolve() / "mlflow.db"
    return f"sqlite:///{path}"


def default_artifact_location(base: str | os.PathLike = DEFAULT_DIR) -> str:
    return (Path(base).resolve() / "mlartifacts").as_uri()


def tracking_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def registry_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri()


def is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def configure(explicit: str | None = None) -> str:
    """Point mlflow at the tracking store; returns the URI in use.

    The embedded SQLite store keeps its artifacts under ``.mlcd/mlartifacts`` (not the
    current directory's ``mlruns``), created on first use.
    """
    import mlflow

    uri = tracking_uri(explicit)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry_uri(None if explicit is None else explicit))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return uri


def ensure_experiment(name: str) -> str:
    """Get or create an experiment; local stores put artifacts under ``.mlcd/mlartifacts``."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = default_artifact_location() if is_local(mlflow.get_tracking_uri()) else None
    return mlflow.create_experiment(name, artifact_location=location)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the tracking server could not be reached (vs. a bad request)."""
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        ConnectionError, TimeoutError)):
        return True
    text = str(exc)
    markers = ("Max retries exceeded", "Connection refused", "Failed to establish",
               "RemoteDisconnected", "Read timed out", "503", "502", "504",
               "API request to endpoint", "Connection aborted")
    return any(m in text for m in markers) and "RESOURCE_DOES_NOT_EXIST" not in text


def with_retries(fn: Callable[[], T], *, what: str, attempts: int = 4,
                 first_delay: float = 0.5, uri: str | None = None) -> T:
    """Call ``fn``; on an unreachable server retry with exponential backoff, then exit 3."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_unavailable(exc):
                raise
            if attempt == attempts:
                where = uri or tracking_uri()
                raise ServiceError(f"MLflow tracking server {where} unavailable while {what} "
                                   f"(after {attempts} attempts)") from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover

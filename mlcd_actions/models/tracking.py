"""MLflow tracking set-up shared by train, evaluate, check-fairness, register, deploy.

The embedded default is ``sqlite:///.mlcd/mlflow.db`` with artifacts in
``.mlcd/mlartifacts`` (DESIGN §5); any ``MLFLOW_TRACKING_URI`` (or ``--tracking-uri``)
wins. Calls that reach a tracking server go through :func:`with_retries`, which retries
with backoff for up to ``$MLCD_TRACKING_WAIT`` seconds (default 60: a server restart fits)
and raises :class:`~mlcd_actions.core.errors.ServiceError` (exit 3) when the server stays
down. mlflow is imported only inside functions.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mlcd_actions.core.errors import ConfigError, ServiceError

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
    env_defaults()
    return uri


def env_defaults() -> None:
    """mlcd's HTTP defaults for MLflow clients (ours too): fail in seconds, not minutes;
    :func:`with_retries` retries an unreachable server on top."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def ensure_experiment(name: str) -> str:
    """Get or create an experiment; local stores put artifacts under ``.mlcd/mlartifacts``."""
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = default_artifact_location() if is_local(mlflow.get_tracking_uri()) else None
    return mlflow.create_experiment(name, artifact_location=location)


# HTTP statuses that mean "the server is down or overloaded, try again"
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
UNAVAILABLE_ERROR_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED"})
# a 502/503/504 quoted where a status is meant: "error code 503 != 200", "status code: 502",
# urllib3's "too many 504 error responses" -- never a bare number (a run id may hold "503")
_STATUS_TEXT = re.compile(r"(?:status(?:[ _]code)?|error code)\s*[:=]?\s*\b(50[234])\b"
                          r"|\btoo many (50[234]) error responses\b", re.IGNORECASE)
_CONNECTION_TEXT = ("Connection refused", "Failed to establish a new connection",
                    "RemoteDisconnected", "Read timed out", "Connection aborted",
                    "Connection reset by peer", "Name or service not known",
                    "Temporary failure in name resolution")


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries: a requests ``response``, an ``status_code``
    attribute, or MLflow's ``get_http_status_code()`` (only for a known error code)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    getter = getattr(exc, "get_http_status_code", None)
    code = getattr(exc, "error_code", None)
    if callable(getter) and code not in (None, "INTERNAL_ERROR"):
        try:
            value = getter()
        except Exception:  # noqa: BLE001 - an odd exception type: no status
            return None
        return value if isinstance(value, int) else None
    return None


def _unavailable_one(exc: BaseException) -> bool | None:
    """True/False when ``exc`` itself decides; None to look at what it was raised from."""
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        ConnectionError, TimeoutError)):
        return True
    if getattr(exc, "error_code", None) in UNAVAILABLE_ERROR_CODES:
        return True
    status = http_status(exc)
    if status is not None:
        return status in UNAVAILABLE_STATUSES
    text = str(exc)
    if "RESOURCE_DOES_NOT_EXIST" in text:
        return False
    if _STATUS_TEXT.search(text) or any(m in text for m in _CONNECTION_TEXT):
        return True
    return None


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the tracking server could not be reached or answered
    502/503/504 (retry, then exit 3), vs. a bad request or a missing run (raise as is).

    Looks at the exception type (requests connection errors and timeouts), the HTTP status
    it carries (MLflow's error code, a response's status), the message only where it
    quotes a status ("error code 503", "too many 502 error responses") or a connection
    failure, and then at the exception it was raised from (MLflow wraps the requests
    error). A bare "503" elsewhere in a message (a run id) means nothing."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _unavailable_one(current)
        if verdict is not None:
            return verdict
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)
    return False


DEFAULT_WAIT = 60.0  # seconds: an MLflow server restart (10-30 s) fits; a dead one exits 3
WAIT_ENV = "MLCD_TRACKING_WAIT"
MAX_DELAY = 5.0


def retry_wait() -> float:
    """How long calls keep retrying an unreachable tracking server: ``$MLCD_TRACKING_WAIT``
    seconds (default 60; 0 means one attempt)."""
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return DEFAULT_WAIT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{WAIT_ENV}={raw!r}: expected a number of seconds >= 0")
    return value


def with_retries(fn: Callable[[], T], *, what: str, attempts: int | None = None,
                 first_delay: float = 0.5, uri: str | None = None,
                 wait: float | None = None) -> T:
    """Call ``fn``; while the server is unreachable retry with exponential backoff (0.5 s
    doubling, at most 5 s) for ``wait`` seconds (default :func:`retry_wait`), or at most
    ``attempts`` times when given; then exit 3. Every call retried this way must be
    idempotent (a read, a tag or alias set, or a find-then-create): an attempt whose answer
    was lost may have been applied."""
    window = retry_wait() if wait is None else wait
    start = time.monotonic()
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_unavailable(exc):
                raise
            left = window - (time.monotonic() - start)
            if left <= 0 or (attempts is not None and attempt >= attempts):
                where = uri or tracking_uri()
                spent = time.monotonic() - start
                raise ServiceError(f"MLflow tracking server {where} unavailable while {what} "
                                   f"(after {attempt} attempts in {spent:.0f}s)") from exc
            time.sleep(min(delay, left))
            delay = min(delay * 2, MAX_DELAY)

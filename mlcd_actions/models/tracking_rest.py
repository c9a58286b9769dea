"""The MLflow REST calls ``mlcd register`` makes, over plain HTTP: no ``import mlflow``.

Importing mlflow costs 1.5-2 s of CPU, most of ``mlcd register``'s time in a fresh
process (every CI step is one). Against a tracking server, what register needs is a
dozen documented REST calls (``/api/2.0/mlflow/...``), so :func:`client_for` returns a
:class:`RestClient` with the same method names and answers as ``MlflowClient`` for them.

Only where it is exact: an ``http(s)://`` tracking URI with no authentication or
only what MLflow reads from the environment the same way (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_INSECURE_TLS``,
``MLFLOW_TRACKING_SERVER_CERT_PATH``). Any other set-up (auth plugins, AWS SigV4, client
certificates, workspaces, Databricks, a request-header plugin, another registry URI) gets
``None`` and the caller uses ``MlflowClient``. A method this class does not have goes to a
``MlflowClient`` made on first use, so callers may use any client method.

Errors: a non-2xx answer raises :class:`RestError` carrying MLflow's ``error_code`` and the
HTTP status (what :func:`mlcd_actions.models.tracking.is_unavailable` reads); connection failures
are requests' own exceptions, as with MLflow's client.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

API = "/api/2.0/mlflow"
# environment that changes how MLflow's client talks to the server: leave those to it
_NOT_HANDLED_ENV = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
                    "MLFLOW_WORKSPACE", "_MLFLOW_DATABRICKS_TRAFFIC_ID", "MLFLOW_ENABLE_DB_SDK")
_TRUE = ("true", "1", "yes")
RETRY_STATUSES = frozenset({429})          # the server did not process the request
RETRY_GET_STATUSES = frozenset({429, 500})  # and, for reads, an internal error (db locked)


class RestError(Exception):
    """An MLflow REST error answer: ``error_code`` (e.g. ``RESOURCE_DOES_NOT_EXIST``),
    ``status_code`` (HTTP) and the server's message."""

    def __init__(self, error_code: str, message: str, status_code: int) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message
        self.status_code = status_code

    def get_http_status_code(self) -> int:
        return self.status_code


def handles(uri: str, registry_uri: str | None = None, environ=None) -> bool:
    """True when :class:`RestClient` talks to ``uri`` exactly as MlflowClient would."""
    env = os.environ if environ is None else environ
    if registry_uri not in (None, uri):
        return False
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    if any(env.get(name) for name in _NOT_HANDLED_ENV):
        return False
    if str(env.get("MLFLOW_TRACKING_AWS_SIGV4", "")).lower() in _TRUE:
        return False
    return not _header_plugins()


def _header_plugins() -> bool:
    """Is a third-party request-header provider installed (MLflow would call it)?"""
    import importlib.metadata

    try:
        return bool(importlib.metadata.entry_points(group="mlflow.request_header_provider"))
    except Exception:  # noqa: BLE001 - unreadable metadata: let MLflow decide
        return True


def client_for(uri: str, registry_uri: str | None = None) -> RestClient | None:
    return RestClient(uri) if handles(uri, registry_uri) else None


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("mlflow-skinny")
    except importlib.metadata.PackageNotFoundError:
        try:
            return importlib.metadata.version("mlflow")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


def _tags(items: list[dict] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in items or []}


def _run(data: dict) -> SimpleNamespace:
    info = dict(data.get("info") or {})
    info.setdefault("run_id", info.get("run_uuid"))
    body = data.get("data") or {}
    return SimpleNamespace(
        info=SimpleNamespace(**{k: info.get(k) for k in (
            "run_id", "run_name", "experiment_id", "user_id", "status", "start_time",
            "end_time", "artifact_uri", "lifecycle_stage")}),
        data=SimpleNamespace(tags=_tags(body.get("tags")),
                             params={p["key"]: p.get("value") for p in body.get("params") or []},
                             metrics={m["key"]: m.get("value") for m in body.get("metrics") or []}))


def _logged_model(data: dict) -> SimpleNamespace:
    info = data.get("info") or {}
    return SimpleNamespace(
        model_id=info.get("model_id"), name=info.get("name"),
        experiment_id=info.get("experiment_id"), source_run_id=info.get("source_run_id") or None,
        creation_timestamp=info.get("creation_timestamp_ms"),
        last_updated_timestamp=info.get("last_updated_timestamp_ms"),
        artifact_location=info.get("artifact_uri"), status=info.get("status"),
        tags=_tags(info.get("tags")))


def _model_version(data: dict) -> SimpleNamespace:
    return SimpleNamespace(
        name=data.get("name"), version=str(data.get("version")),
        creation_timestamp=data.get("creation_timestamp"),
        last_updated_timestamp=data.get("last_updated_timestamp"),
        description=data.get("description"), user_id=data.get("user_id"),
        current_stage=data.get("current_stage"), source=data.get("source"),
        run_id=data.get("run_id") or None, run_link=data.get("run_link"),
        status=data.get("status", "READY"), status_message=data.get("status_message"),
        tags=_tags(data.get("tags")), aliases=list(data.get("aliases") or []),
        model_id=data.get("model_id") or None)


class RestClient:
    """The subset of ``MlflowClient`` that ``mlcd register`` calls, over plain HTTP."""

    def __init__(self, uri: str) -> None:
        import requests

        self.uri = uri.rstrip("/")
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"mlflow-python-client/{_version()}"
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if user and password:
            self._session.auth = (user, password)
        elif token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        if str(os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "")).lower() in _TRUE:
            self._session.verify = False
        elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            self._session.verify = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
        # MLflow's defaults; mlcd's tracking.env_defaults() sets 30 s and 2 retries
        self.timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120)
        self.retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") or 7)
        self._fallback = None

    def __getattr__(self, name: str):
        """Anything else ``MlflowClient`` does, through ``MlflowClient`` (imported now)."""
        if name.startswith("_"):
            raise AttributeError(name)
        if self._fallback is None:
            from mlflow import MlflowClient

            self._fallback = MlflowClient(self.uri, registry_uri=self.uri)
        return getattr(self._fallback, name)

    # ---------------------------------------------------------------- transport

    def _call(self, method: str, path: str, *, params: dict | None = None,
              body: dict | None = None) -> dict:
        retry_on = RETRY_GET_STATUSES if method == "GET" else RETRY_STATUSES
        delay = 0.5
        for attempt in range(self.retries + 1):
            resp = self._session.request(method, f"{self.uri}{API}/{path}", params=params,
                                         json=body, timeout=self.timeout)
            if resp.status_code not in retry_on or attempt == self.retries:
                break
            time.sleep(delay)
            delay *= 2
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            data = {}
        if not resp.ok:
            data = data if isinstance(data, dict) else {}
            code = data.get("error_code") or ("INTERNAL_ERROR" if resp.status_code >= 500
                                              else "BAD_REQUEST")
            message = data.get("message") or (f"{resp.status_code} {resp.reason}: "
                                              f"{resp.text[:300]}")
            raise RestError(code, message, resp.status_code)
        return data

    # ---------------------------------------------------------------- runs

    def get_run(self, run_id: str) -> SimpleNamespace:
        return _run(self._call("GET", "runs/get", params={"run_id": run_id})["run"])

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self._call("POST", "runs/set-tag", body={"run_id": run_id, "run_uuid": run_id,
                                                 "key": key, "value": str(value)})

    # ---------------------------------------------------------------- logged models

    def get_logged_model(self, model_id: str) -> SimpleNamespace:
        return _logged_model(self._call("GET", f"logged-models/{model_id}")["model"])

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None = None,
                             max_results: int | None = None) -> list[SimpleNamespace]:
        body: dict[str, Any] = {"experiment_ids": list(experiment_ids)}
        if filter_string:
            body["filter"] = filter_string
        if max_results is not None:
            body["max_results"] = max_results
        data = self._call("POST", "logged-models/search", body=body)
        return [_logged_model(m) for m in data.get("models") or []]

    # ---------------------------------------------------------------- registry

    def search_model_versions(self, filter_string: str | None = None,
                              max_results: int = 10000) -> list[SimpleNamespace]:
        params: dict[str, Any] = {"max_results": max_results}
        if filter_string:
            params["filter"] = filter_string
        data = self._call("GET", "model-versions/search", params=params)
        return [_model_version(v) for v in data.get("model_versions") or []]

    def create_registered_model(self, name: str) -> None:
        self._call("POST", "registered-models/create", body={"name": name})

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None,
                             model_id: str | None = None) -> SimpleNamespace:
        body: dict[str, Any] = {"name": name, "source": source}
        if run_id:
            body["run_id"] = run_id
        if tags:
            body["tags"] = [{"key": k, "value": str(v)} for k, v in tags.items()]
        if model_id:
            body["model_id"] = model_id
        data = self._call("POST", "model-versions/create", body=body)
        return _model_version(data["model_version"])

    def get_model_version(self, name: str, version: str) -> SimpleNamespace:
        data = self._call("GET", "model-versions/get",
                          params={"name": name, "version": str(version)})
        return _model_version(data["model_version"])

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None:
        self._call("POST", "model-versions/set-tag",
                   body={"name": name, "version": str(version), "key": key,
                         "value": str(value)})

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        self._call("DELETE", "model-versions/delete-tag",
                   body={"name": name, "version": str(version), "key": key})

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self._call("POST", "registered-models/set-tag",
                   body={"name": name, "key": key, "value": str(value)})

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._call("POST", "registered-models/alias",
                   body={"name": name, "alias": alias, "version": str(version)})

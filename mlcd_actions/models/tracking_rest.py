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


# ---------------------------------------------------------------- what mlcd train logs

MULTIPART_ENV = "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"
MULTIPART_DEFAULT = 500 * 1024 ** 2  # MLflow's default: larger files go multipart
PARAMS_BATCH = 100  # MLflow's batch of logged-model params per request
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


def _json_number(value: float):
    """A metric value as MLflow's protobuf JSON writes it (NaN/Infinity as strings)."""
    value = float(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _now_ms() -> int:
    return int(time.time() * 1000)


def metric_json(key: str, value: float, timestamp: int, step: int, *, model_id=None,
                dataset_name=None, dataset_digest=None, run_id=None) -> dict:
    """``mlflow.entities.Metric.to_proto`` as JSON: optional fields only when set."""
    out: dict[str, Any] = {"key": key, "value": _json_number(value), "timestamp": int(timestamp),
                           "step": int(step)}
    for name, field in (("model_id", model_id), ("dataset_name", dataset_name),
                        ("dataset_digest", dataset_digest), ("run_id", run_id)):
        if field:
            out[name] = field
    return out


def _kv(items: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": str(k), "value": str(v)} for k, v in items.items()]


def _mime(name: str) -> str:
    import mimetypes

    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _creds_file() -> bool:
    """Does ``~/.mlflow/credentials`` exist (MlflowClient would read a login from it)?"""
    from pathlib import Path

    return (Path.home() / ".mlflow" / "credentials").is_file()


class TrainRestClient(RestClient):
    """The MLflow calls ``mlcd train`` makes for a run and a scikit-learn logged model, over
    plain HTTP with MlflowClient's request bodies; artifacts go through the server's
    ``mlflow-artifacts`` proxy (any other artifact location, or a file MLflow would upload in
    parts, goes through MlflowClient)."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self._artifact_uris: dict[str, str] = {}

    # -- experiments and runs

    def ensure_experiment(self, name: str) -> str:
        """``tracking.ensure_experiment`` on a server: get by name, else create."""
        try:
            data = self._call("GET", "experiments/get-by-name",
                              params={"experiment_name": name})
            return str(data["experiment"]["experiment_id"])
        except RestError as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        return str(self._call("POST", "experiments/create",
                              body={"name": name})["experiment_id"])

    def create_run(self, experiment_id: str, start_time: int | None = None,
                   tags: dict[str, Any] | None = None, run_name: str | None = None):
        tags = tags or {}
        body: dict[str, Any] = {"experiment_id": str(experiment_id),
                                "user_id": tags.get("mlflow.user", "unknown"),
                                "start_time": start_time or _now_ms(), "tags": _kv(tags)}
        if run_name:
            body["run_name"] = run_name
        run = _run(self._call("POST", "runs/create", body=body)["run"])
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        return run

    def log_batch(self, run_id: str, metrics: list[dict] = (), params: dict | None = None,
                  tags: dict | None = None) -> None:
        """``metrics`` as :func:`metric_json` dicts; ``params``/``tags`` as mappings."""
        self._call("POST", "runs/log-batch", body={
            "run_id": run_id, "metrics": list(metrics), "params": _kv(params or {}),
            "tags": _kv(tags or {})})

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None,
                   step: int | None = None) -> None:
        body = {"run_id": run_id, "run_uuid": run_id,
                **metric_json(key, value, timestamp or _now_ms(), step or 0)}
        self._call("POST", "runs/log-metric", body=body)

    def get_metric_history(self, run_id: str, key: str) -> list[SimpleNamespace]:
        out, token = [], None
        while True:
            params = {"run_id": run_id, "run_uuid": run_id, "metric_key": key}
            if token:
                params["page_token"] = token
            data = self._call("GET", "metrics/get-history", params=params)
            out.extend(SimpleNamespace(
                key=m.get("key"), value=float(m.get("value", 0.0)),
                timestamp=int(m.get("timestamp", 0)), step=int(m.get("step", 0)),
                model_id=m.get("model_id") or None, dataset_name=m.get("dataset_name") or None,
                dataset_digest=m.get("dataset_digest") or None, run_id=m.get("run_id") or None)
                for m in data.get("metrics") or [])
            token = data.get("next_page_token")
            if not token:
                return out

    def set_terminated(self, run_id: str, status: str = "FINISHED",
                       end_time: int | None = None) -> None:
        self._call("POST", "runs/update", body={"run_uuid": run_id, "run_id": run_id,
                                                "status": status,
                                                "end_time": end_time or _now_ms()})

    # -- logged models

    def create_logged_model(self, experiment_id: str, name: str, source_run_id: str,
                            tags: dict[str, Any], params: dict[str, Any]) -> SimpleNamespace:
        items = _kv(params)
        body: dict[str, Any] = {"experiment_id": str(experiment_id), "name": name,
                                "source_run_id": source_run_id,
                                "params": items[:PARAMS_BATCH], "tags": _kv(tags)}
        model = _logged_model(self._call("POST", "logged-models", body=body)["model"])
        for i in range(PARAMS_BATCH, len(items), PARAMS_BATCH):
            self._call("POST", f"logged-models/{model.model_id}/params",
                       body={"model_id": model.model_id, "params": items[i:i + PARAMS_BATCH]})
        self._artifact_uris[model.model_id] = model.artifact_location
        return model

    def log_model_output(self, run_id: str, model_id: str, step: int = 0) -> None:
        self._call("POST", "runs/outputs", body={"run_id": run_id,
                                                 "models": [{"model_id": model_id,
                                                             "step": int(step)}]})

    def finalize_logged_model(self, model_id: str, status: str) -> None:
        """``status``: ``READY`` or ``FAILED``."""
        self._call("PATCH", f"logged-models/{model_id}",
                   body={"model_id": model_id, "status": f"LOGGED_MODEL_{status}"})

    # -- artifacts

    def _artifact_base(self, artifact_uri: str | None) -> str | None:
        """``MlflowArtifactsRepository.resolve_uri``: the HTTP URL of an ``mlflow-artifacts:``
        location on this server, or None."""
        import re
        from urllib.parse import urlunparse

        if not artifact_uri or not artifact_uri.startswith("mlflow-artifacts:"):
            return None
        parsed, track = urlparse(artifact_uri), urlparse(self.uri)
        if parsed.netloc and parsed.netloc != track.netloc:
            return None  # another server: MlflowClient's business
        path = re.sub(r"//+", "/", f"{track.path}/{ARTIFACTS_API}/{parsed.path}")
        return urlunparse((track.scheme, track.netloc, path, "", "", "")).rstrip("/")

    def _upload(self, base: str, local: str, artifact_dir: str | None) -> None:
        import posixpath

        name = os.path.basename(local)
        target = posixpath.join(base, *(p for p in (artifact_dir, name) if p))
        with open(local, "rb") as fh:
            self._request_raw("PUT", target, data=fh, headers={"Content-Type": _mime(name)})

    def _request_raw(self, method: str, url: str, **kwargs) -> None:
        delay = 0.5
        for attempt in range(self.retries + 1):
            data = kwargs.get("data")
            if hasattr(data, "seek"):
                data.seek(0)
            resp = self._session.request(method, url, timeout=self.timeout, **kwargs)
            if resp.status_code not in RETRY_STATUSES or attempt == self.retries:
                break
            time.sleep(delay)
            delay *= 2
        if not resp.ok:
            raise RestError("INTERNAL_ERROR" if resp.status_code >= 500 else "BAD_REQUEST",
                            f"{resp.status_code} {resp.reason}: {resp.text[:300]}",
                            resp.status_code)

    def _multipart(self, paths: list[str]) -> bool:
        try:
            limit = int(os.environ.get(MULTIPART_ENV) or MULTIPART_DEFAULT)
        except ValueError:
            return True  # MLflow decides what a bad value means
        return any(os.path.getsize(p) >= limit for p in paths)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None):
        base = self._artifact_base(self._artifact_uris.get(run_id))
        if base is None or self._multipart([local_path]):
            return self.__getattr__("log_artifact")(run_id, local_path, artifact_path)
        self._upload(base, local_path, artifact_path)
        return None

    def log_model_artifacts(self, model_id: str, local_dir: str) -> None:
        from pathlib import Path

        base = self._artifact_base(self._artifact_uris.get(model_id))
        files = sorted(str(p) for p in Path(local_dir).rglob("*") if p.is_file())
        if base is None or self._multipart(files):
            self.__getattr__("log_model_artifacts")(model_id, local_dir)
            return
        for file in files:
            rel = os.path.relpath(os.path.dirname(file), local_dir)
            self._upload(base, file, None if rel == "." else rel.replace(os.sep, "/"))


def train_client_for(uri: str, registry_uri: str | None = None) -> TrainRestClient | None:
    """A :class:`TrainRestClient` when it talks to ``uri`` as MlflowClient would (see
    :func:`handles`; also no ``~/.mlflow/credentials`` file), else None."""
    return TrainRestClient(uri) if handles(uri, registry_uri) and not _creds_file() else None


def context_tags(argv: list[str] | None = None, environ=None) -> dict[str, str] | None:
    """The tags MLflow's run-context registry resolves for a logged model
    (``mlflow.tracking.context.registry.resolve_tags()``) outside notebooks and Databricks:
    user, source name and type, the git commit/branch/remote of ``sys.argv[0]``'s repository
    (GitPython, as MLflow), ``MLFLOW_RUN_CONTEXT``. None when another provider would add
    tags (a plugin, a notebook, Databricks): the caller asks mlflow."""
    import importlib.metadata
    import json
    import sys

    env = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    try:
        if importlib.metadata.entry_points(group="mlflow.run_context_provider"):
            return None
    except Exception:  # noqa: BLE001 - unreadable metadata: let MLflow decide
        return None
    if ("ipykernel" in sys.modules or any(k.startswith("DATABRICKS_") for k in env)
            or os.path.exists("/databricks/DBR_VERSION") or _creds_file()):
        return None
    main = argv[0] if argv and argv[0] else None
    user = env.get("MLFLOW_TRACKING_USERNAME")
    if not user:
        import getpass

        try:
            user = getpass.getuser()
        except ImportError:
            user = "unknown"
    tags = {"mlflow.user": user, "mlflow.source.name": main or "<console>",
            "mlflow.source.type": "LOCAL"}
    if main is not None:
        git = _git_info(main)
        if git.get("mlflow.source.git.commit") is not None:
            tags.update({k: v for k, v in git.items() if v is not None})
    if "MLFLOW_RUN_CONTEXT" in env:
        tags.update(json.loads(env["MLFLOW_RUN_CONTEXT"]))
    return tags


def _git_info(path: str) -> dict[str, str | None]:
    """``mlflow.utils.git_utils``: commit, branch and remote URL (credentials stripped) of the
    repository holding ``path``, each None when unavailable."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        from git import Repo
    except ImportError:
        return {}
    if os.path.isfile(path):
        path = os.path.dirname(os.path.abspath(path))

    def attempt(fn):
        try:
            return fn(Repo(path, search_parent_directories=True))
        except Exception:  # noqa: BLE001 - as MLflow: any failure means no value
            return None

    def commit(repo):
        return None if path in repo.ignored(path) else repo.head.commit.hexsha

    def url(repo):
        value = next((remote.url for remote in repo.remotes), None)
        if value is None:
            return None
        parsed = urlsplit(value)
        if not parsed.scheme or "@" not in parsed.netloc:
            return value
        return urlunsplit((parsed.scheme, parsed.netloc.rpartition("@")[2], parsed.path,
                           parsed.query, parsed.fragment))

    return {"mlflow.source.git.commit": attempt(commit),
            "mlflow.source.git.branch": attempt(lambda repo: repo.active_branch.name),
            "mlflow.source.git.repoURL": attempt(url)}

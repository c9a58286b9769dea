"""``mlcd serve``: online predictions over HTTP until SIGTERM/SIGINT.

Loads the model once here (a bad URI or a registry that is down fails fast with exit 2
or 3, before anything listens), checks the prediction log can be written, then runs the
app of :mod:`mlcd_actions.delivery.serving` under uvicorn with ``workers`` processes. After a
graceful stop (in-flight requests finished, prediction log flushed) the stage passes
with a one-line summary.
"""

from __future__ import annotations

import os
import sys

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.results import StageResult

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def run(model_uri: str, *, host: str = "127.0.0.1", port: int = 8080,
        workers: int | None = None, prediction_log: str | None = None,
        max_body_bytes: int | None = None, tracking_uri: str | None = None,
        model_name: str | None = None, model_version: str | None = None,
        lineage_id: str | None = None, access_log: bool = False, log_level: str = "info",
        graceful_timeout: float = 30.0, threads: int = 1, body_timeout: float | None = None,
        batch_max_rows: int | None = None, batch_max_wait_ms: float | None = None
        ) -> StageResult:
    """Serve ``model_uri``; ``workers`` None = one per usable CPU (see
    :func:`mlcd_actions.delivery.serving.threads.default_workers`)."""
    from mlcd_actions.delivery.serving import threads as pools
    from mlcd_actions.delivery.serving.app import (
        DEFAULT_BATCH_ROWS,
        DEFAULT_BATCH_WAIT_MS,
        DEFAULT_BODY_TIMEOUT,
        DEFAULT_MAX_BODY,
        Settings,
    )

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be between 0 and 65535")
    if workers is None:
        workers = pools.default_workers()
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if threads < 1:
        raise ConfigError(f"--threads {threads}: must be at least 1")
    body_timeout = DEFAULT_BODY_TIMEOUT if body_timeout is None else body_timeout
    if not body_timeout > 0:
        raise ConfigError(f"--body-timeout {body_timeout}: must be positive (seconds)")
    batch_rows = DEFAULT_BATCH_ROWS if batch_max_rows is None else batch_max_rows
    if batch_rows < 1:
        raise ConfigError(f"--batch-max-rows {batch_max_rows}: must be at least 1")
    batch_wait = DEFAULT_BATCH_WAIT_MS if batch_max_wait_ms is None else batch_max_wait_ms
    if batch_wait < 0:
        raise ConfigError(f"--batch-max-wait-ms {batch_max_wait_ms}: must be 0 or more")
    max_body = DEFAULT_MAX_BODY if max_body_bytes is None else max_body_bytes
    if max_body < 1:
        raise ConfigError(f"--max-body-bytes {max_body_bytes}: must be positive")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level {log_level!r}: choose one of {', '.join(LOG_LEVELS)}")
    if prediction_log:
        _check_writable(prediction_log)
    settings = Settings(model_uri=model_uri, tracking_uri=tracking_uri,
                        prediction_log=os.path.abspath(prediction_log) if prediction_log
                        else None, max_body_bytes=max_body, model_name=model_name,
                        model_version=model_version, lineage_id=lineage_id, threads=threads,
                        body_timeout=body_timeout, batch_max_rows=batch_rows,
                        batch_max_wait_ms=batch_wait)
    # native thread pools of this process and of the workers it starts: set before the
    # model's libraries load (threadpoolctl caps what is already loaded, in each worker)
    os.environ.update(pools.environment(threads))

    from mlcd_actions.delivery.serving import server
    from mlcd_actions.delivery.serving.app import load_spec

    spec = load_spec(settings)  # fail fast: bad URI (2), registry down (3)
    # workers load their own copy; pin what this process resolved (an alias may move)
    settings.model_name = spec.name
    settings.model_version = spec.version
    settings.lineage_id = spec.lineage_id
    if workers > 1 and spec.model.resolved_uri.startswith("models:/"):
        settings.model_uri = spec.model.resolved_uri
    url = f"http://{host}:{port}"
    what = f"model {spec.model.display}" + (f" (lineage {spec.lineage_id})"
                                             if spec.lineage_id else "")

    def ready() -> None:
        sys.stderr.write(f"mlcd serve: {what} on {url} with {workers} worker(s) of "
                         f"{threads} native thread(s)"
                         + (f", prediction log {settings.prediction_log}"
                            if settings.prediction_log else "") + "\n")
        sys.stderr.flush()

    stats = server.serve(settings, host=host, port=port, workers=workers,
                         spec=spec if workers == 1 else None, log_level=log_level,
                         access_log=access_log, graceful_timeout=graceful_timeout,
                         on_ready=ready)
    result = StageResult("serve")
    served = (f"; served {stats['requests']:,} requests ({stats['rows']:,} rows)"
              if stats.get("requests") is not None else "")
    result.reason = f"{what} served on {url} until stopped{served}"
    result.outputs = {"url": url}
    result.metrics = {k: stats[k] for k in ("requests", "rows") if stats.get(k) is not None}
    result.details = {"model_uri": model_uri, "model_name": spec.name,
                      "model_version": spec.version, "run_id": spec.run_id,
                      "workers": workers, "threads": threads,
                      "prediction_log": settings.prediction_log, "max_body_bytes": max_body,
                      "body_timeout": body_timeout, "batch_max_rows": batch_rows,
                      "batch_max_wait_ms": batch_wait}
    if spec.lineage_id:
        result.lineage = {"lineage_id": spec.lineage_id}
    return result


def _check_writable(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError as exc:
        raise ConfigError(f"--prediction-log {path}: cannot write: "
                          f"{exc.strerror or exc}") from None

"""``mlcd serve --model-uri URI [--host 127.0.0.1] [--port 8080] [--workers N]``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("serve", short_help="Serve online predictions over HTTP (/health, /metadata, "
                                   "/predict).")
@click.option("--model-uri", required=True, metavar="URI",
              help="MLflow model: runs:/, models:/name/3, models:/name@alias, or a local "
                   "model directory (/opt/model in the app image).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 inside a container).")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@click.option("--workers", default=None, type=int,
              help="Worker processes; each loads the model once at start-up. Default: one "
                   "per CPU this process may use (affinity and cgroup quota).")
@click.option("--threads", default=1, show_default=True, type=int,
              help="Native threads (OpenMP, BLAS) per worker, set with threadpoolctl: "
                   "workers times threads should not exceed the CPUs.")
@click.option("--prediction-log", default=None, type=click.Path(dir_okay=False),
              metavar="PATH",
              help="Append one JSON line per predicted row here (read by `mlcd monitor`).")
@click.option("--max-body-bytes", default=10 * 1024 * 1024, show_default=True, type=int,
              help="Larger request bodies get 413.")
@click.option("--body-timeout", default=5.0, show_default=True, type=float,
              metavar="SECONDS",
              help="A request body not received within this time gets 408 and the "
                   "connection is closed.")
@click.option("--batch-max-rows", default=1024, show_default=True, type=int,
              help="Concurrent requests are predicted together in one model call of at "
                   "most this many rows (1 turns batching off).")
@click.option("--batch-max-wait-ms", default=2.0, show_default=True, type=float,
              metavar="MS",
              help="How long a batch may wait for requests still being read (never when "
                   "none is).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking server for runs:/ and models:/ URIs "
                   "(default: $MLFLOW_TRACKING_URI, else the local store).")
@click.option("--model-name", default=None,
              help="Model name to report (default: from the registry URI).")
@click.option("--model-version", default=None,
              help="Model version to report (default: from the registry URI).")
@click.option("--lineage-id", default=None,
              help="Lineage id to report (default: model metadata or the run tag "
                   "mlcd.lineage_id).")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request line.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="Server log level.")
def cmd(model_uri, host, port, workers, threads, prediction_log, max_body_bytes, body_timeout,
        batch_max_rows, batch_max_wait_ms, tracking_uri, model_name, model_version,
        lineage_id, access_log, log_level):
    """Serve online predictions for the model at --model-uri until SIGTERM or SIGINT.

    POST /predict takes MLflow payloads (records, dataframe_records, dataframe_split,
    columns/data, inputs) and answers {"predictions", "probabilities", "model_version",
    "request_id"}. Bad requests get 400/413/422 naming the field. Exit 2 when the model
    cannot be loaded or the port is taken, 3 when the registry is unreachable.
    """
    from mlcd_actions.stages import serve

    return serve.run(model_uri, host=host, port=port, workers=workers, threads=threads,
                     prediction_log=prediction_log, max_body_bytes=max_body_bytes,
                     body_timeout=body_timeout, batch_max_rows=batch_max_rows,
                     batch_max_wait_ms=batch_max_wait_ms,
                     tracking_uri=tracking_uri, model_name=model_name,
                     model_version=model_version, lineage_id=lineage_id,
                     access_log=access_log, log_level=log_level)

"""``mlcd smoke-test --url URL [--samples FILE] [--expect-model-version V]``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("smoke-test", short_help="Check a deployed app: health, version, golden "
                                        "predictions, latency, bad input.")
@click.option("--url", required=True, help="Base URL of the deployed app.")
@click.option("--samples", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Golden samples JSON (default: golden/samples.json of --model-uri's run).")
@click.option("--expect-model-version", default=None,
              help="/metadata must report this model version.")
@click.option("--model-uri", default=None, metavar="URI",
              help="Where to find the golden samples (the model's MLflow run).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking server (default: $MLFLOW_TRACKING_URI or local).")
@click.option("--timeout", default=60.0, show_default=True, type=float,
              help="Seconds to wait for /health.")
@click.option("--latency-budget-ms", default=250.0, show_default=True, type=float,
              help="p95 latency budget for single-row requests.")
@click.option("--requests", default=20, show_default=True, type=int,
              help="Single-row requests for the latency check.")
@click.option("--tolerance", default=1e-6, show_default=True, type=float,
              help="Relative tolerance for golden predictions.")
def cmd(url, samples, expect_model_version, model_uri, tracking_uri, timeout,
        latency_budget_ms, requests, tolerance):
    """Wait for readiness, then check /metadata, golden predictions, latency and that bad
    input gets a 4xx. Exit 1 with a table of what failed.
    """
    from mlcd_actions.stages import smoke_test

    return smoke_test.run(url=url, samples=samples, expect_model_version=expect_model_version,
                          model_uri=model_uri, tracking_uri=tracking_uri, timeout=timeout,
                          latency_budget_ms=latency_budget_ms, requests=requests,
                          tolerance=tolerance)

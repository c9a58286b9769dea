"""``mlcd register``: register a trained model version, tag lineage, set an alias."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("register", help="""Register a model in the MLflow registry and set an alias.

Tags the version with its lineage (data version and sha256, git SHA, code version, lineage
id) from the training run, and with the evaluate / check-fairness verdicts found in
--report-dir. Registering the same run twice gives the same version. The alias is set last,
only after the version and its tags are in place.

Outputs: model-version, model-name, registered-uri (models:/NAME/VERSION), lineage-id.
Exit codes: 0 registered; 1 the run did not finish; 2 bad options or unknown run/model;
3 the MLflow server stayed unreachable (retried with backoff).""")
@click.option("--model-uri", required=True, help="runs:/<run_id>/model (train's model-uri).")
@click.option("--name", required=True, help="Registered model name.")
@click.option("--alias", default="candidate", show_default=True,
              help="Alias to point at the version ('' for none).")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI [default: MLFLOW_TRACKING_URI or "
                   "sqlite:///.mlcd/mlflow.db].")
@click.option("--await-seconds", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="How long to wait for the new version to become READY.")
def cmd(model_uri, name, alias, tracking_uri, await_seconds):
    from mlcd_actions.stages import register

    report_dir = click.get_current_context().params.get("report_dir", ".mlcd/reports")
    return register.run(model_uri, name, alias=alias, tracking_uri=tracking_uri,
                        report_dir=report_dir, await_seconds=await_seconds)

"""``mlcd override --stage STAGE --reason TEXT``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("override", short_help="Record an audited override of a failed gate.")
@click.option("--stage", required=True, type=click.Choice(["evaluate", "check-fairness",
                                                           "promote"]),
              help="The gate that may pass.")
@click.option("--reason", default=None, help="Why it may pass (required; recorded).")
@click.option("--model-uri", default=None, metavar="URI",
              help="The model version: models:/NAME/VERSION, models:/NAME@ALIAS, or the "
                   "runs:/ URI the gate scored.")
@click.option("--name", default=None, help="Registered model name (with --model-version).")
@click.option("--model-version", default=None, help="Registered version (with --name).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking server (default: $MLFLOW_TRACKING_URI or local).")
def cmd(**kw):
    """Record in the registry that the failed STAGE gate of one model version may pass:
    approver (the CI user), reason, time and run URL go into the version's tags and this
    report. That stage honours it for that version only. Run it only from a job bound to
    a protected environment with required reviewers. Exit 2 without a reason.
    """
    from mlcd_actions.stages import override

    return override.run(**kw)

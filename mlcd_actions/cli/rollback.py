"""``mlcd rollback --environment NAME``."""

from __future__ import annotations

import click

from mlcd_actions.cli._deploy_options import TARGETS, target_kwargs, target_options
from mlcd_actions.cli.common import stage_command


@stage_command("rollback", short_help="Put the previous version back in an environment.")
@click.option("--environment", required=True, help="staging, production, ...")
@click.option("--target", default=None, type=click.Choice(TARGETS),
              help="Deploy target (default: the one the environment uses).")
@click.option("--reason", default="", help="Why: recorded in the promotion history.")
@target_options
def cmd(**kw):
    """Redeploy the environment's previous version and point its alias back at it; while
    a shadow or canary runs, abort it instead (the current version keeps serving).

    The previous version comes from the deployment record, or from the registry (the
    promotion history, else tag mlcd.previous.<alias>) in a fresh CI job. Outputs: url,
    model-version, rolled-back-from.
    """
    from mlcd_actions.stages import rollback

    return rollback.run(**target_kwargs(kw))

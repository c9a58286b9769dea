"""``mlcd deploy --environment NAME --target local|docker|kubernetes|command``."""

from __future__ import annotations

import click

from mlcd_actions.cli._deploy_options import TARGETS, target_kwargs, target_options
from mlcd_actions.cli.common import stage_command


@stage_command("deploy", short_help="Deploy a version to an environment; move its alias.")
@click.option("--environment", required=True, help="staging, production, ...")
@click.option("--target", default="local", show_default=True, type=click.Choice(TARGETS),
              help="Deploy target adapter (plugins add more).")
@click.option("--image", default=None, metavar="IMAGE",
              help="App image (docker, kubernetes, command targets).")
@click.option("--model-uri", default=None, metavar="URI",
              help="Model to serve directly (local target), e.g. models:/credit/3.")
@click.option("--model-version", default=None,
              help="Registered version being deployed (default: from the URI or image labels).")
@target_options
def cmd(**kw):
    """Start the new version beside the old one, wait until it is healthy, move the
    environment's MLflow alias (staging; champion for production) recording the previous
    version, then stop the old one. If the new version never gets healthy, the old one
    keeps serving. Outputs: url, previous-version, model-version, alias.
    """
    from mlcd_actions.stages import deploy

    return deploy.run(**target_kwargs(kw))

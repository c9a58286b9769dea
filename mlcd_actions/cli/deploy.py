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
@click.option("--strategy", default="direct", show_default=True,
              type=click.Choice(["direct", "shadow", "canary"]),
              help="direct: the new version takes over; shadow: it gets a copy of every "
                   "request, clients get the current answers; canary: it answers --traffic "
                   "percent. Finish shadow/canary with mlcd promote or mlcd rollback.")
@click.option("--traffic", default=None, type=float, metavar="PERCENT",
              help="canary: the share of /predict requests the candidate answers (0-100).")
@click.option("--proxy-port", default=None, type=int,
              help="Port of the environment's router (nginx) when one starts (default: a "
                   "free port; later deploys keep it).")
@click.option("--reason", default="", help="Why: recorded in the promotion history.")
@target_options
def cmd(**kw):
    """Start the new version beside the old one, wait until it is healthy, move the
    environment's MLflow alias (staging; champion for production) recording the previous
    version and a promotion-history entry, then stop the old one. If the new version never
    gets healthy, the old one keeps serving; if another deploy moved the alias meanwhile,
    this one fails and removes its new version.

    With --strategy shadow or canary the alias does not move: the candidate starts beside
    the current version behind the environment's router. Outputs: url, previous-version,
    model-version, alias, strategy, candidate-url.
    """
    from mlcd_actions.stages import deploy

    return deploy.run(**target_kwargs(kw))

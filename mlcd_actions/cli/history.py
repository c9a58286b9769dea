"""``mlcd history --environment NAME [--name MODEL]``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("history", short_help="Show an environment's promotion history.")
@click.option("--environment", required=True, help="staging, production, ...")
@click.option("--name", default=None,
              help="Registered model name (default: the one deployed in the environment).")
@click.option("--alias", default=None,
              help="The environment's alias (default: champion for production, else the "
                   "environment name).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0),
              help="Show the newest N entries (0: all).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking server (default: $MLFLOW_TRACKING_URI or local).")
@click.option("--state-dir", default=".mlcd/deployments", show_default=True,
              type=click.Path(file_okay=False),
              help="Where the per-environment deployment records live.")
def cmd(**kw):
    """Print every alias move and deploy outcome of the environment, newest first: time,
    action, version from -> to, strategy, actor, reason, run URL and overrides; warn when
    the history, the alias and the running app's /metadata disagree. Outputs:
    model-version (serving), entries.
    """
    from mlcd_actions.stages import history

    result = history.run(**kw)
    listing = history.text(result)
    if listing:
        click.echo(listing)
    return result

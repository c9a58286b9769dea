"""``mlcd promote --environment NAME``."""

from __future__ import annotations

import click

from mlcd_actions.cli._deploy_options import with_router_options
from mlcd_actions.cli.common import GATE, split_thresholds, stage_command


@stage_command("promote", short_help="Finish a shadow/canary: the candidate takes over.")
@click.option("--environment", required=True, help="staging, production, ...")
@click.option("--threshold", "thresholds", multiple=True, type=GATE,
              help="Gate on the live traffic, e.g. 'error_rate<=0.01', 'agreement>=0.95', "
                   "'p95_ms_delta<=50' (default: error_rate<=0.01 and p95_ms_delta<=100; "
                   "shadow also agreement>=0.9).")
@click.option("--min-requests", default=20, show_default=True, type=click.IntRange(min=1),
              help="Answers the candidate must have given before it is judged.")
@click.option("--wait", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait for --min-requests.")
@click.option("--tolerance", default=1e-6, show_default=True, type=float,
              help="shadow: predictions closer than this (relative) agree.")
@click.option("--keep-candidate", is_flag=True,
              help="When a gate fails, leave the rollout running (default: abort it).")
@click.option("--alias", default=None,
              help="Alias to move (default: the one deploy recorded).")
@click.option("--reason", default="", help="Why: recorded in the promotion history.")
@with_router_options
def cmd(**kw):
    """Judge the running shadow or canary on the traffic seen since it started (error
    rate, latency of both versions, and for a shadow the agreement of the predictions);
    when the gates pass, move the alias (recorded in the promotion history), route every
    request to the candidate and stop the old version. When a gate fails, abort: the old
    version keeps serving (exit 1). Outputs: promoted, model-version, previous-version, url.
    """
    from mlcd_actions.stages import promote

    options = {k: kw.pop(k) for k in ("docker_host", "namespace", "nginx", "gateway")}
    options["context"] = kw.pop("kube_context")
    kw["thresholds"] = split_thresholds(kw["thresholds"])
    return promote.run(options=options, **kw)

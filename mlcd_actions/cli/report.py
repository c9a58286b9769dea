"""``mlcd report``: all stage reports in one job summary and one sticky PR/MR comment."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("report")
@click.option("--comment", is_flag=True,
              help="Create or update the one sticky pull-request (GitHub) or merge-request "
                   "(GitLab) comment carrying the report.")
@click.option("--platform", type=click.Choice(["github", "gitlab"]),
              help="Where to comment (default: detected from the CI environment).")
@click.option("--pr", type=click.IntRange(1),
              help="Pull/merge request number (default: from GITHUB_EVENT_PATH/GITHUB_REF or "
                   "CI_MERGE_REQUEST_IID).")
@click.option("--title", default="mlcd report", show_default=True, help="Report heading.")
@click.option("--artifact-url", default=None, metavar="URL",
              help="Where the report folder's files (plots) are reachable, for the links in "
                   "the summary and comment: a URL with {path} (replaced by the file's path "
                   "in the report folder) or one URL for every file (e.g. the CI run's "
                   "artifacts). Default: relative links.")
@click.option("--fail-on-failed-stage", is_flag=True,
              help="Exit 1 when any gathered stage failed (default: report passes when it "
                   "could write; see the `overall` output).")
def cmd(**kwargs):
    """Gather <report-dir>/*.json into one summary (and comment) with verdicts, gate
    explainers, the metric diff against the champion, findings and Mermaid charts."""
    from mlcd_actions.stages import report

    report_dir = click.get_current_context().params.get("report_dir") or ".mlcd/reports"
    return report.run(report_dir, echo=click.echo, **kwargs)

"""``mlcd init [--ci github|gitlab] [--data PATH] [--force]``: scaffold mlcd into a repo."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import split_multi, stage_command


@stage_command("init", short_help="Scaffold mlcd.yaml, a schema, DVC and CI workflows.")
@click.option("--ci", type=click.Choice(["github", "gitlab", "none"]), default="github",
              show_default=True, help="Which CI callers to write: .github/workflows/mlcd-*.yml "
                                      "or .gitlab-ci.yml.")
@click.option("--data", default=None, type=click.Path(), metavar="PATH",
              help="The training data [default: the one CSV/Parquet/JSONL file in data/ or "
                   "the current folder].")
@click.option("--force", is_flag=True, default=False,
              help="Overwrite files that exist (default: keep them and say so).")
@click.option("--label", default=None,
              help="Label column [default: a column named label/target/... else the last].")
@click.option("--sensitive", multiple=True, metavar="COL",
              help="Sensitive feature column, repeatable [default: columns named sex, "
                   "gender, race, age_band...].")
@click.option("--repo", default="mlcd-actions/mlcd-actions", show_default=True,
              metavar="OWNER/NAME", help="Where the reusable workflows / GitLab templates live.")
@click.option("--ref", default="v1", show_default=True,
              help="Their version (a tag, branch or commit SHA).")
@click.option("--dvc/--no-dvc", default=True, show_default=True,
              help="Run `dvc init` with a local remote in .mlcd/dvc-remote.")
def cmd(ci, data, force, label, sensitive, repo, ref, dvc):
    """Scaffold mlcd into the current folder: a commented mlcd.yaml (checked against the
    CLI before it is written), schema.yaml inferred from the data, a PII policy when the
    data holds personal data, DVC with a local remote, and the CI callers of the reusable
    workflows. Existing files are kept (reported as skipped) unless --force.
    Outputs: config, label, task, sensitive, written, skipped.
    """
    from mlcd_actions.cli import commands
    from mlcd_actions.stages import init

    result = init.run(".", ci=ci, data=data, force=force, label=label,
                      sensitive=split_multi(sensitive), repo=repo, ref=ref, dvc=dvc,
                      commands=commands())
    for path, action in result.tables[0].rows:
        click.echo(f"  {path:<36} {action}")
    for warning in result.warnings:
        click.echo(f"mlcd init: warning — {warning}")
    return result

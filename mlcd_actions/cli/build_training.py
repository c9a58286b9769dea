"""``mlcd build-training [SRC_DIR] --out DIR``: check the training code, package it, version it."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import split_multi, stage_command


class CommandLine(click.ParamType):
    """A command line; several in one env var / config value are separated by newlines."""

    name = "command"
    envvar_list_splitter = "\n"

    def convert(self, value, param, ctx):
        return str(value).strip()


@stage_command("build-training", short_help="Check and package the training code (wheel/zip).")
@click.argument("src_dir", required=False, default=".", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the artifact (a wheel or a zip).")
@click.option("--base-version", default=None, metavar="X.Y.Z",
              help="Version to build towards. Default: next patch after the latest release "
                   "tag (vX.Y.Z or X.Y.Z), or 0.1.0.")
@click.option("--check-command", multiple=True, type=CommandLine(),
              metavar="CMD",
              help="A check to run in SRC_DIR instead of the detected ruff/pytest; repeatable. "
                   "Run without a shell (use \"sh -c '...'\" for pipes). In MLCD_CHECK_COMMAND, "
                   "one command per line.")
@click.option("--skip-checks", is_flag=True, default=False,
              help="Package without running any check.")
@click.option("--toggles", default=None, type=click.Path(dir_okay=False),
              help="Feature-toggle YAML: channels: {alpha: false, beta: true, release: true}. "
                   "A disabled channel skips the stage.")
@click.option("--artifact-kind", type=click.Choice(["auto", "wheel", "zip"]), default="auto",
              show_default=True,
              help="Artifact kind; auto = wheel when SRC_DIR has pyproject.toml or setup.py.")
@click.option("--artifact-name", default=None,
              help="Zip artifact name (default: the project's or the folder's name).")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Leave files out (gitignore syntax), on top of .gitignore; repeatable.")
@click.option("--check-timeout", type=float, default=1800.0, show_default=True,
              help="Seconds each check (and the wheel build) may take.")
def cmd(src_dir, out, base_version, check_command, skip_checks, toggles, artifact_kind,
        artifact_name, exclude, check_timeout):
    """Run the training code's checks (ruff, pytest), then package SRC_DIR as a versioned
    wheel or zip.

    Version from git: X.Y.Z-alpha.N+sha on pull requests, X.Y.Z-beta.N+sha on the default
    branch, X.Y.Z on a release tag. Outputs: artifact, version, channel, sha256,
    channel-enabled. Exit 1 when a check fails.
    """
    from mlcd_actions.stages import build_training

    return build_training.run(src_dir, out=out, base_version=base_version,
                              check_commands=[c for c in check_command if c],
                              skip_checks=skip_checks, toggles=toggles, kind=artifact_kind,
                              name=artifact_name,
                              excludes=split_multi(exclude), check_timeout=check_timeout)

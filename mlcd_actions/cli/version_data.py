"""``mlcd version-data PATH... [--remote URL]``: dvc add + dvc push, output the data version."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("version-data", short_help="Version data with DVC (dvc add + dvc push).")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--remote", default=None, metavar="URL",
              help="DVC remote to push to, made the default remote: a local folder or "
                   "s3://bucket/prefix. Default: the repository's configured default remote.")
@click.option("--endpoint-url", default=None, metavar="URL",
              help="Endpoint of an S3-compatible store (MinIO, Ceph...). AWS_ENDPOINT_URL "
                   "is also honoured.")
@click.option("--remote-name", default=None, metavar="NAME",
              help="Name of the DVC remote to configure or use (default: 'mlcd', or the "
                   "remote that already has this URL).")
@click.option("--push/--no-push", default=True, show_default=True,
              help="Push to the remote (--no-push only adds to the local DVC cache).")
def cmd(paths, remote, endpoint_url, remote_name, push):
    """dvc add + dvc push PATH... (files or folders) and output the data version.

    Initialises DVC when the repository has none (`dvc init`, or `--no-scm` outside
    git). Outputs: data-version (short md5 over every added output), dvc-files.
    Exit 3 when the push fails, 2 when a PATH is missing.
    """
    from mlcd_actions.stages import version_data

    return version_data.run(list(paths), remote=remote, endpoint_url=endpoint_url,
                            remote_name=remote_name, push=push)

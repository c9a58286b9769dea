"""``mlcd ingest SOURCE_URI --out DIR``: a Parquet snapshot plus manifest from any source."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


class _Header(click.ParamType):
    """A 'Name: value' header; MLCD_HEADER holds one per line (values contain spaces)."""

    name = "'NAME: VALUE'"
    envvar_list_splitter = "\n"

    def convert(self, value, param, ctx):
        return value if isinstance(value, str) else str(value)


@stage_command("ingest", help="""Fetch a dataset into DIR/data.parquet + DIR/manifest.json.

SOURCE_URI is a local path or glob (CSV, TSV, Parquet, JSON lines), http(s)://...,
s3://bucket/key (or prefix/ or a glob), or a SQLAlchemy URL such as
'sqlite:///db.sqlite?query=SELECT ...' (read-only). More schemes come from plugins.

Exit codes: 0 ingested; 2 missing, malformed or empty input (no rows), bad URI;
3 the source is unreachable, timed out, missed the deadline or refused the credentials.""")
@click.argument("source_uri")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for data.parquet and manifest.json (replaced atomically).")
@click.option("--format", "format", type=click.Choice(["csv", "tsv", "parquet", "jsonl", "json"]),
              default=None, help="Table format when the name or content type does not tell.")
@click.option("--query", default=None,
              help="SQL sources: one read-only SELECT statement (or ?query= in the URL).")
@click.option("--endpoint-url", default=None,
              help="S3 sources: an S3-compatible endpoint (default: AWS_ENDPOINT_URL or AWS).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds to wait for a remote source to connect or send data [default: 30].")
@click.option("--retries", type=click.IntRange(min=0), default=None,
              help="Retries after a connection error, timeout or 5xx [default: 3].")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds the whole source may take, every attempt, retry and the "
                   "download included (exit 3 after) [default: 60].")
@click.option("--allow-outside-workspace", is_flag=True, default=False,
              help="Local sources in CI: read files outside the job's workspace "
                   "(GITHUB_WORKSPACE / CI_PROJECT_DIR), refused by default.")
@click.option("--header", "header", multiple=True, type=_Header(),
              help="HTTP sources: an extra request header 'Name: value', repeatable "
                   "(credentials are masked; in the env var, one header per line).")
def cmd(source_uri, out, format, query, endpoint_url, timeout, retries, deadline,
        allow_outside_workspace, header):
    from mlcd_actions.stages import ingest

    return ingest.run(source_uri, out, format=format, query=query, endpoint_url=endpoint_url,
                      timeout=timeout, retries=retries, deadline=deadline, headers=header,
                      allow_outside_workspace=allow_outside_workspace)

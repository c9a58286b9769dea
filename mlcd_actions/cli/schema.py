"""``mlcd schema infer DATA --out schema.yaml``: write a first pandera schema."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@click.group("schema", short_help="Infer pandera schemas for `mlcd validate`.")
def group():
    """Pandera schemas for `mlcd validate`."""


@stage_command("schema infer", short_help="Infer a pandera YAML schema from a dataset.")
@click.argument("data", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="SCHEMA.yaml",
              help="Where to write the schema (pandera YAML; replaced atomically).")
@click.option("--max-categories", default=20, show_default=True, type=int,
              help="Strings with at most this many distinct (repeating) values get an "
                   "allowed-categories check (isin); 0 turns it off.")
def infer(data, out, max_categories):
    """Infer a commented pandera YAML schema from DATA: dtypes, nullable, observed
    ranges, allowed categories for low-cardinality strings. Output: schema (path).
    """
    from mlcd_actions.stages import schema

    return schema.infer(data, out, max_categories=max_categories)


group.add_command(infer, "infer")

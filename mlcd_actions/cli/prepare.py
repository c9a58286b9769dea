"""``mlcd prepare DATA --label COL --out DIR [--transform module:function]``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


class BadStep(click.BadParameter, ValueError):
    """A bad step: click shows it as a usage error; mlcd.yaml validation (which expects
    ValueError) reports it with the file and line."""


class StepType(click.ParamType):
    """A declarative step, ``'impute:age=median'``; in mlcd.yaml also ``{impute: age=median}``."""

    name = "kind:columns[=method]"

    def convert(self, value, param, ctx):
        from mlcd_actions.core.errors import ConfigError
        from mlcd_actions.stages.prepare import parse_step  # light: no pandas at import

        try:
            return parse_step(value).spec
        except ConfigError as exc:
            raise BadStep(exc.one_line(), ctx=ctx, param=param) from exc


@stage_command("prepare", help="Transform a dataset and split it into DIR/train.parquet and "
               "DIR/test.parquet (written together, atomically).")
@click.argument("data", type=click.Path(dir_okay=True))
@click.option("--label", required=True, help="Label column (must exist; rows without one "
              "are dropped).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output directory for train.parquet, test.parquet and prepare.json.")
@click.option("--transform", default=None, metavar="MODULE:FUNCTION",
              help="User transform function(df) -> df, importable from the current directory "
              "(or path/to/file.py:function).")
@click.option("--step", "steps", multiple=True, type=StepType(),
              help="Declarative step, repeatable, fitted on train: impute:COLS=mean|median|"
              "most_frequent|constant:V, scale:COLS[=standard|minmax|robust], "
              "encode:COLS[=onehot|ordinal], derive:NEW=EXPR, drop:COLS. COLS: a,b or *.")
@click.option("--test-size", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.2, show_default=True, help="Fraction of rows in the test set.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed of the split.")
@click.option("--stratify/--no-stratify", default=None,
              help="Stratify by the label [default: on for classification labels].")
@click.option("--split-by-id", default=None, metavar="COL",
              help="Split by a hash of this id column: a row keeps its side across versions.")
def cmd(data, label, out, transform, steps, test_size, seed, stratify, split_by_id):
    from mlcd_actions.stages import prepare

    return prepare.run(data, label=label, out=out, transform=transform, steps=list(steps),
                       test_size=test_size, seed=seed, stratify=stratify,
                       split_by_id=split_by_id)

"""``mlcd validate DATA --schema schema.yaml [--reference REF_DATA]``: pandera checks and skew."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import (
    GATE,
    engine_options,
    spark_settings,
    split_thresholds,
    stage_command,
)


@stage_command("validate", short_help="Check data against a pandera schema (and skew vs a reference).")
@click.argument("data", type=click.Path())
@click.option("--schema", required=True, metavar="SCHEMA",
              help="pandera schema: a YAML/JSON file (as `mlcd schema infer` writes), a .py "
                   "file, or 'package.module:Model' (DataFrameModel or DataFrameSchema).")
@click.option("--reference", default=None, type=click.Path(), metavar="REF_DATA",
              help="Reference data (e.g. the training snapshot): compare column statistics "
                   "with it and gate the skew.")
@click.option("--skew-threshold", "skew_threshold", multiple=True, type=GATE,
              metavar="SPEC",
              help="Skew gate, repeatable: 'psi<=0.2' for every column that has the metric, "
                   "'age.psi<=0.1' for one column. Metrics: psi, ks, ks_pvalue, linf, js, chi2, "
                   "chi2_pvalue, new_categories, missing_categories, null_fraction, "
                   "null_fraction_delta. Default with --reference: psi<=0.2, linf<=0.2; "
                   "null_fraction_delta<=0.1 unless a global null_fraction_delta one is given.")
@click.option("--skew-bins", default=10, show_default=True, type=int,
              help="Quantile bins of the reference for PSI.")
@engine_options
def cmd(data, schema, reference, skew_threshold, skew_bins, engine, spark_master, spark_conf):
    """Validate DATA against a pandera schema, collecting every failure.

    Prints a table of failing column / check / count / sample rows, annotates the
    schema line of each failing check, and outputs valid=true|false. Exit 1 on any
    schema failure or skew over a threshold; 2 on bad input (missing or malformed
    data or schema, empty dataset).
    """
    from mlcd_actions.stages import validate

    return validate.run(data, schema, reference=reference,
                        skew_thresholds=split_thresholds(skew_threshold), bins=skew_bins,
                        engine=engine, spark=spark_settings(spark_master, spark_conf))

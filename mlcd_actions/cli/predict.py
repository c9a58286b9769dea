"""``mlcd predict --model-uri URI --input PATH --output PATH [--engine pandas|spark]``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import engine_options, spark_settings, split_multi, stage_command


@stage_command("predict", short_help="Batch predictions for a file, directory or source URI.")
@click.option("--model-uri", required=True, metavar="URI",
              help="MLflow model: runs:/, models:/name/3, models:/name@alias, or a local "
                   "model directory.")
@click.option("--input", required=True, metavar="PATH",
              help="A .parquet/.csv file, a directory of them, or a source URI "
                   "(https://, s3://, ...).")
@click.option("--output", required=True, type=click.Path(dir_okay=False), metavar="PATH",
              help="Predictions file: .parquet or .csv (written atomically).")
@engine_options
@click.option("--chunk-rows", default=100_000, show_default=True, type=int,
              help="Rows per chunk (spark: per Arrow batch): memory stays flat however "
                   "large the input.")
@click.option("--workers", default=None, type=click.IntRange(min=1), metavar="N",
              help="Processes predicting chunks in parallel (default: one per usable CPU "
                   "when the model costs at least 1 us of CPU a row on the first chunk, "
                   "else one process; inputs under 50,000 rows run in one process). pandas "
                   "engine.")
@click.option("--id-column", "id_column", multiple=True, metavar="COL",
              help="Input column copied to the output, repeatable (default: columns named "
                   "id or ending in _id).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking server for runs:/ and models:/ URIs.")
def cmd(model_uri, input, output, engine, spark_master, spark_conf, chunk_rows, workers,
        id_column, tracking_uri):
    """Predict every row of --input with the model at --model-uri, chunk by chunk.

    Writes the id columns, `prediction`, and for classifiers `probability` (binary) or
    `probability_<class>` columns. Outputs predictions-path and rows. Exit 2 on bad
    input (missing file, malformed CSV, missing feature column), 1 when the model
    returns the wrong shape, 3 when the registry or source is unreachable.
    """
    from mlcd_actions.stages import predict

    return predict.run(model_uri, input, output, engine=engine, chunk_rows=chunk_rows,
                       id_columns=split_multi(id_column) or None, tracking_uri=tracking_uri,
                       spark=spark_settings(spark_master, spark_conf), workers=workers)

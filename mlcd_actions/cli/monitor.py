"""``mlcd monitor``: drift and accuracy decay; sets ``retrain`` and can dispatch retraining."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import (
    GATE,
    engine_options,
    spark_settings,
    split_multi,
    split_thresholds,
    stage_command,
)


@stage_command("monitor")
@click.option("--reference", required=True, type=click.Path(),
              help="Reference (training) data: Parquet, CSV, JSONL or a directory of them.")
@click.option("--current", required=True, type=click.Path(),
              help="Current data: a dataset, or the prediction log of `mlcd serve` (.jsonl with "
                   "an `inputs` field, detected automatically).")
@click.option("--threshold", multiple=True, type=GATE, metavar="SPEC",
              help="Drift gate, global ('psi<=0.2') or per feature ('age.psi<=0.1'); repeatable. "
                   "Metrics: psi, ks, ks_pvalue, chi2, chi2_pvalue, js, linf, new_categories, "
                   "missing_categories, null_fraction, null_fraction_delta, nonfinite_fraction. "
                   "Without a global one, each feature gets a statistical test whose threshold "
                   "accounts for the sample sizes (KS vs its critical value, chi-square "
                   "p-value; see --alpha); null_fraction_delta<=0.1 unless a global "
                   "null_fraction_delta one is given.")
@click.option("--columns", multiple=True, help="Only these feature columns (default: shared).")
@click.option("--categorical", multiple=True,
              help="Treat these columns as categorical (e.g. integer codes).")
@click.option("--bins", type=click.IntRange(2, 1000), default=10, show_default=True,
              help="Quantile bins of the reference for PSI, at most (fewer when the smaller "
                   "side has under 5 rows per bin).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.05, show_default=True,
              help="False-alarm rate of the default drift gates for the whole batch (split "
                   "over the features, Bonferroni).")
@click.option("--labels", help="Ground truth: a labels file (joined on request_id + row, or on "
                               "--id-column) or a label column of the current dataset.")
@click.option("--label-column", help="The label column in the labels file (default: `label`, "
                                     "or its only non-key column).")
@click.option("--id-column", help="Join labels to the current data on this id column.")
@click.option("--prediction-column", default="prediction", show_default=True,
              help="The predictions column of the current data.")
@click.option("--reference-predictions",
              help="Reference predictions: a column of the reference, or a file.")
@click.option("--baseline-metrics", type=click.Path(dir_okay=False),
              help="Metrics recorded at training time: JSON {metric: value} or a stage report.")
@click.option("--model-uri", help="Read the baseline metrics from the MLflow run of this model "
                                  "(models:/name/1, models:/name@champion, runs:/id/model).")
@click.option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or "
                                     "the embedded store).")
@click.option("--max-decay", multiple=True, type=GATE, metavar="SPEC",
              help="Allowed accuracy decay vs the baseline ('accuracy=0.05' or 'f1=5%'); "
                   "default: 5% on accuracy (classification) or rmse (regression).")
@click.option("--dispatch", type=click.Choice(["github", "gitlab"]),
              help="When retraining is needed, start the retraining workflow/pipeline.")
@click.option("--event-type", default="mlcd-retrain", show_default=True,
              help="GitHub repository_dispatch event type.")
@click.option("--workflow", help="GitHub: use workflow_dispatch of this workflow file instead.")
@click.option("--ref", help="Branch for workflow_dispatch / the GitLab trigger "
                            "(default: the current or default branch).")
@click.option("--dispatch-input", multiple=True,
              help="key=value passed to the workflow (inputs) or pipeline (variables).")
@click.option("--open-issue", is_flag=True,
              help="When retraining is needed, open or update one incident issue.")
@click.option("--platform", type=click.Choice(["github", "gitlab"]),
              help="For --open-issue (default: --dispatch, or detected from CI).")
@click.option("--issue-title", default="mlcd monitor: data drift detected — retraining requested",
              show_default=True, help="Title of the incident issue.")
@click.option("--dry-run", is_flag=True, help="Print the API requests instead of sending them.")
@click.option("--max-plots", type=click.IntRange(0), default=12, show_default=True,
              help="Histogram PNGs written beside the report (drifted features first).")
@engine_options
def cmd(reference, current, threshold, columns, categorical, **kwargs):
    """Compare current data (or the serving prediction log) with the reference: per-feature
    drift, prediction drift and accuracy decay; exit 1 when any is over its threshold."""
    from pathlib import Path

    from mlcd_actions.stages import monitor

    report_dir = click.get_current_context().params.get("report_dir") or ".mlcd/reports"
    return monitor.run(reference, current, thresholds=split_thresholds(threshold),
                       columns=split_multi(columns) or None, categorical=split_multi(categorical),
                       dispatch_inputs=list(kwargs.pop("dispatch_input")),
                       max_decay=split_thresholds(kwargs.pop("max_decay")),
                       spark=spark_settings(kwargs.pop("spark_master"), kwargs.pop("spark_conf")),
                       plots_dir=Path(report_dir) / "monitor", echo=click.echo, **kwargs)

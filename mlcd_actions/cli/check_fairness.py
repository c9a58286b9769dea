"""``mlcd check-fairness``: per-group metrics and fairness gates for each sensitive feature."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import GATE, split_multi, split_thresholds, stage_command


@stage_command("check-fairness", short_help="Per-group metrics and fairness gates.")
@click.option("--model-uri", required=True,
              help="MLflow model URI: runs:/ID/model, models:/NAME/VERSION, models:/NAME@ALIAS, "
                   "a local model directory or a file: URI.")
@click.option("--test", "test", required=True, type=click.Path(dir_okay=True),
              help="Test set (.parquet, .csv, .jsonl or a directory of them).")
@click.option("--label", required=True, help="Label column in the test set.")
@click.option("--sensitive", multiple=True, metavar="COL",
              help="Sensitive feature column (repeatable). Without any, and without --threshold, "
                   "the stage is skipped: not configured.")
@click.option("--threshold", multiple=True, type=GATE, metavar="SPEC",
              help="Fairness gate, e.g. 'demographic_parity_difference<=0.1', scoped to one "
                   "feature as 'sex:equalized_odds_ratio>=0.8' (repeatable).")
@click.option("--min-group-size", default=1, show_default=True, type=click.IntRange(min=1),
              help="Groups with fewer rows are reported but not gated (left out of the "
                   "differences and ratios).")
@click.option("--pos-label", default=None,
              help="Favourable outcome (default: the last class in sorted order, e.g. 1); "
                   "required for more than two classes.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Write a per-group bar chart PNG per feature beside the report.")
@click.option("--allow-skipped-gates", is_flag=True, default=False,
              help="A gate that cannot be checked (fewer than two groups reach "
                   "--min-group-size, or a ratio of 0 to 0) is skipped with a warning "
                   "instead of failing the stage.")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                   "sqlite:///.mlcd/mlflow.db).")
def cmd(model_uri, test, label, sensitive, threshold, min_group_size, pos_label, plots,
        allow_skipped_gates, tracking_uri):
    """Check MODEL for group fairness on the test set, per --sensitive column.

    Per group: accuracy, selection rate, TPR, FPR (regression: MAE, RMSE); per feature:
    demographic parity and equalized odds differences and ratios, gated by --threshold.
    A gate that cannot be checked fails, unless --allow-skipped-gates.
    """
    from mlcd_actions.stages import check_fairness

    report_dir = click.get_current_context().params.get("report_dir") or ".mlcd/reports"
    return check_fairness.run(model_uri, test, label, split_multi(sensitive),
                              thresholds=split_thresholds(threshold),
                              min_group_size=min_group_size, pos_label=pos_label,
                              tracking_uri=tracking_uri, report_dir=report_dir, plot=plots,
                              allow_skipped_gates=allow_skipped_gates)

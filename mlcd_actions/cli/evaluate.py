"""``mlcd evaluate``: metrics on the test set, gated by thresholds and against the champion."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import GATE, split_multi, split_thresholds, stage_command


@stage_command("evaluate", short_help="Score a model on the test set and gate it.")
@click.option("--model-uri", required=True,
              help="MLflow model URI: runs:/ID/model, models:/NAME/VERSION, models:/NAME@ALIAS, "
                   "a local model directory or a file: URI.")
@click.option("--test", "test", required=True, type=click.Path(dir_okay=True),
              help="Test set (.parquet, .csv, .jsonl or a directory of them).")
@click.option("--label", required=True, help="Label column in the test set.")
@click.option("--threshold", multiple=True, type=GATE, metavar="SPEC",
              help="Absolute gate, e.g. 'accuracy>=0.8' or 'rmse<=3' (repeatable).")
@click.option("--baseline", default=None, metavar="URI",
              help="Baseline model URI (default: models:/<name>@champion when --name is given).")
@click.option("--max-drop", multiple=True, type=GATE, metavar="SPEC",
              help="Allowed drop vs the baseline, e.g. 'accuracy=0.01' or 'f1=2%' (repeatable).")
@click.option("--slice", multiple=True, metavar="COL",
              help="Also report metrics per value of this column (repeatable).")
@click.option("--name", default=None,
              help="Registered model name; its @champion alias is the default baseline.")
@click.option("--pos-label", default=None,
              help="Positive class for binary precision/recall/F1/ROC "
                   "(default: the last class in sorted order, e.g. 1 or 'yes').")
@click.option("--max-slice-values", default=20, show_default=True, type=click.IntRange(min=1),
              help="Largest slices reported per --slice column.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Write confusion matrix, ROC/PR or residual PNGs beside the report.")
@click.option("--allow-skipped-gates", is_flag=True, default=False,
              help="A gate whose metric cannot be computed (e.g. roc_auc without "
                   "predict_proba) is skipped with a warning instead of failing the stage.")
@click.option("--min-lift", multiple=True, type=GATE, metavar="SPEC",
              help="Required lift over the naive baseline (majority class / stratified guess, "
                   "or the mean) scored on the same test set, e.g. 'balanced_accuracy=0.1' or "
                   "'r2=10%' (repeatable; default: balanced_accuracy=0.1 for classification, "
                   "r2=0.1 for regression; 'none' turns it off).")
@click.option("--main-snapshot", default=".mlcd/main", show_default=True, metavar="DIR",
              help="The model the main branch last produced (model/, evaluate.json, "
                   "meta.json): the baseline when no champion is reachable, and the 'vs main' "
                   "metric diff.")
@click.option("--save-main-snapshot", is_flag=True, default=False,
              help="Write the candidate to --main-snapshot when the stage does not fail (on "
                   "the main branch, for later pull requests to compare with).")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                   "sqlite:///.mlcd/mlflow.db).")
def cmd(model_uri, test, label, threshold, baseline, max_drop, slice, name, pos_label,  # noqa: A002
        max_slice_values, plots, allow_skipped_gates, min_lift, main_snapshot,
        save_main_snapshot, tracking_uri):
    """Evaluate MODEL on the test set: metrics, per-slice metrics, plots, and gates.

    Gates are absolute thresholds (--threshold 'accuracy>=0.8'), a lift over a naive
    baseline (--min-lift, on by default) and allowed drops against a baseline (--max-drop
    'accuracy=0.01'); the baseline is --baseline, else models:/<name>@champion, else the
    model the main branch last produced (--main-snapshot), re-scored on this test set.
    A gate that cannot be checked fails, unless --allow-skipped-gates; --max-drop with no
    baseline at all (the first model) is skipped, its row saying why.
    """
    from mlcd_actions.stages import evaluate

    report_dir = click.get_current_context().params.get("report_dir") or ".mlcd/reports"
    return evaluate.run(model_uri, test, label, thresholds=split_thresholds(threshold),
                        baseline=baseline, max_drops=split_thresholds(max_drop),
                        slices=split_multi(slice), name=name, pos_label=pos_label,
                        tracking_uri=tracking_uri, report_dir=report_dir,
                        max_slice_values=max_slice_values, plot=plots,
                        allow_skipped_gates=allow_skipped_gates,
                        min_lifts=_min_lifts(min_lift), main_snapshot=main_snapshot or None,
                        save_main_snapshot=save_main_snapshot)


def _min_lifts(values) -> list[str] | None:
    """None (the default for the task) when not given; [] for 'none'."""
    specs = split_thresholds(values)
    if not specs:
        return None
    return [] if [s.lower() for s in specs] == ["none"] else specs


"""``mlcd train``: run the training contract on prepared data, tracked in MLflow."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import split_multi, stage_command


@stage_command("train", help="""Train a model on the prepared data and log it to MLflow.

Give --entrypoint module:function (called as function(train_df, params) -> model, imported
from the current directory), or --command CMD (run with MLCD_TRAIN_PATH, MLCD_TEST_PATH,
MLCD_PARAMS_PATH, MLCD_OUTPUT_DIR, MLFLOW_RUN_ID, MLFLOW_TRACKING_URI; it saves an MLflow
model to $MLCD_OUTPUT_DIR or logs one to the run), or neither for a built-in --estimator.

Outputs: run-id, model-uri (runs:/<run_id>/model), lineage-id, experiment-id.
Exit codes: 0 trained; 1 the training raised, failed or timed out; 2 bad input or
options; 3 the MLflow tracking server is unreachable.""")
@click.option("--train", "train", required=True, type=click.Path(),
              help="Prepared training set (train.parquet from `mlcd prepare`; CSV works too).")
@click.option("--label", default=None, help="Label column (required; may come from mlcd.yaml).")
@click.option("--entrypoint", default=None, help="module:function returning the fitted model.")
@click.option("--command", default=None, help="Shell command that trains, e.g. 'python train.py'.")
@click.option("--estimator", default=None,
              help="Built-in model when neither --entrypoint nor --command is given: "
                   "logistic_regression, random_forest_classifier, gradient_boosting_classifier, "
                   "decision_tree_classifier, ridge, linear_regression, random_forest_regressor, "
                   "gradient_boosting_regressor, decision_tree_regressor "
                   "[default: logistic_regression or ridge].")
@click.option("--task", type=click.Choice(["auto", "classification", "regression"]),
              default="auto", show_default=True, help="What the label is.")
@click.option("--params", "params", default=None, type=click.Path(dir_okay=False),
              help="YAML or JSON mapping passed to the training (built-in: estimator arguments).")
@click.option("--test", default=None, type=click.Path(),
              help="Test set: input example, golden predictions and test metrics.")
@click.option("--experiment", default="mlcd", show_default=True, help="MLflow experiment name.")
@click.option("--run-name", default=None, help="MLflow run name.")
@click.option("--data-version", default=None,
              help="Data version to record [default: version-data's output in --report-dir].")
@click.option("--code-version", default=None,
              help="Code version to record [default: build-training's output in --report-dir].")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Stop the training after this many seconds (exit 1, run FAILED).")
@click.option("--alert-webhook", default=None,
              help="URL that gets a Slack-style {\"text\": ...} POST when training fails "
                   "(masked in output).")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI [default: MLFLOW_TRACKING_URI or "
                   "sqlite:///.mlcd/mlflow.db].")
@click.option("--log-interval", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="Seconds between training-log uploads and heartbeats.")
@click.option("--golden-rows", type=click.IntRange(min=1, max=1000), default=32,
              show_default=True, help="Rows of golden predictions saved for smoke tests.")
@click.option("--serialization-format", type=click.Choice(["cloudpickle", "skops", "pickle"]),
              default="cloudpickle", show_default=True,
              help="How a scikit-learn model is serialized.")
@click.option("--extra-pip-requirements", "extra_pip_requirements", multiple=True,
              help="Extra pip requirements for the logged model (repeat or comma-separate).")
def cmd(train, label, entrypoint, command, estimator, task, params, test, experiment, run_name,
        data_version, code_version, timeout, alert_webhook, tracking_uri, log_interval,
        golden_rows, serialization_format, extra_pip_requirements):
    from mlcd_actions.stages import train as stage

    report_dir = click.get_current_context().params.get("report_dir", ".mlcd/reports")
    return stage.run(train, label=label, entrypoint=entrypoint, command=command,
                     estimator=estimator, task=task, params_file=params, test=test,
                     experiment=experiment, run_name=run_name, data_version=data_version,
                     code_version=code_version, timeout=timeout, alert_webhook=alert_webhook,
                     tracking_uri=tracking_uri, report_dir=report_dir,
                     log_interval=log_interval, golden_rows=golden_rows,
                     serialization_format=serialization_format,
                     extra_pip_requirements=split_multi(extra_pip_requirements))

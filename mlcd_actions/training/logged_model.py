"""Log a scikit-learn model to a run the way ``mlflow.models.Model.log`` does, with the model
directory written by :mod:`mlcd_actions.training.sklearn_model` (no ``mlflow.sklearn``, no
``infer_signature``, no requirement checks against the installed packages).

The tracking calls are Model.log's, in its order, through the given ``MlflowClient``:

1. create the logged model (PENDING) in the run's experiment, named ``name``, with the
   run's params and the context tags MLflow resolves (``mlflow.user``, source, git commit);
2. record it as an output of the run (step 0) and copy the run's step-0 metrics to it;
3. write the model directory (its ``MLmodel`` carries the logged model's id and artifact
   location) and upload it to the logged model's artifacts;
4. finalize the logged model READY (FAILED, and re-raise, when a step above failed).

Returns an object with ``model_id`` (what ``Model.log``'s ``ModelInfo`` gives mlcd).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace


def _copy_step_metrics(client, model_id: str, run_id: str, step: int = 0) -> None:
    """``Model.log``'s ``log_model_metrics_for_step``: the run's metrics at ``step`` that no
    model holds yet are logged again, bound to the model."""
    from mlflow.entities import Metric

    names = client.get_run(run_id).data.metrics.keys()
    metrics = []
    for name in names:
        metrics.extend(Metric(key=m.key, value=m.value, timestamp=m.timestamp, step=m.step,
                              dataset_name=m.dataset_name, dataset_digest=m.dataset_digest,
                              run_id=m.run_id, model_id=model_id)
                       for m in client.get_metric_history(run_id, name)
                       if m.step == step and m.model_id is None)
    client.log_batch(run_id=run_id, metrics=metrics)


def log(client, model, plan, *, experiment_id: str, run_id: str, name: str,
        metadata: dict | None) -> SimpleNamespace:
    """Log ``model`` as ``name`` in run ``run_id`` (see the module docstring)."""
    from mlcd_actions.models import tracking_rest

    if isinstance(client, tracking_rest.TrainRestClient):
        return _log_rest(client, model, plan, experiment_id=experiment_id, run_id=run_id,
                         name=name, metadata=metadata)
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.tracking.context import registry as context_registry

    from mlcd_actions.training import sklearn_model

    params = {k: str(v) for k, v in client.get_run(run_id).data.params.items()}
    logged = client.create_logged_model(
        experiment_id=experiment_id, name=name, source_run_id=run_id,
        tags=context_registry.resolve_tags(None), params=params, model_type=None)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        try:
            client.log_outputs(run_id=run_id, models=[LoggedModelOutput(logged.model_id, step=0)])
            _copy_step_metrics(client, logged.model_id, run_id)
            sklearn_model.save(local, model, plan, run_id=run_id, model_id=logged.model_id,
                               artifact_path=logged.artifact_location, metadata=metadata)
            client.log_model_artifacts(logged.model_id, str(local))
        except Exception:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return SimpleNamespace(model_id=logged.model_id, artifact_location=logged.artifact_location)


def _log_rest(client, model, plan, *, experiment_id: str, run_id: str, name: str,
              metadata: dict | None) -> SimpleNamespace:
    """:func:`log` over :class:`~mlcd_actions.models.tracking_rest.TrainRestClient`: the
    same calls with the same bodies, no mlflow import (unless a run-context plugin or a
    notebook needs MLflow's own tag resolution)."""
    from mlcd_actions.models import tracking_rest
    from mlcd_actions.training import sklearn_model

    tags = tracking_rest.context_tags()
    if tags is None:
        from mlflow.tracking.context import registry as context_registry

        tags = context_registry.resolve_tags(None)
    run = client.get_run(run_id)
    logged = client.create_logged_model(experiment_id, name, run_id, tags,
                                        {k: str(v) for k, v in run.data.params.items()})
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        try:
            client.log_model_output(run_id, logged.model_id, step=0)
            metrics = [tracking_rest.metric_json(
                m.key, m.value, m.timestamp, m.step, model_id=logged.model_id,
                dataset_name=m.dataset_name, dataset_digest=m.dataset_digest, run_id=m.run_id)
                for key in client.get_run(run_id).data.metrics
                for m in client.get_metric_history(run_id, key)
                if m.step == 0 and m.model_id is None]
            client.log_batch(run_id, metrics=metrics)
            sklearn_model.save(local, model, plan, run_id=run_id, model_id=logged.model_id,
                               artifact_path=logged.artifact_location, metadata=metadata)
            client.log_model_artifacts(logged.model_id, str(local))
        except Exception:
            client.finalize_logged_model(logged.model_id, "FAILED")
            raise
        client.finalize_logged_model(logged.model_id, "READY")
    return SimpleNamespace(model_id=logged.model_id, artifact_location=logged.artifact_location)

"""``mlcd train``: run the user's training code on the prepared data, tracked in MLflow.

Three ways to train (DESIGN §2, the training contract):

* ``entrypoint="module:function"``: ``function(train_df, params) -> model``, imported from
  the current directory; ``train_df`` includes the label, ``params["label"]`` names it.
* ``command="python train.py"``: the user's script, with ``MLCD_TRAIN_PATH``,
  ``MLCD_TEST_PATH``, ``MLCD_PARAMS_PATH``, ``MLCD_OUTPUT_DIR``, ``MLCD_LABEL``,
  ``MLFLOW_RUN_ID`` and ``MLFLOW_TRACKING_URI``; it saves an MLflow model to
  ``$MLCD_OUTPUT_DIR`` or logs one to the active run.
* neither: a built-in scikit-learn estimator (:mod:`mlcd_actions.training.estimators`).

Training runs in a child process: its log streams into the run (``logs/train.log``,
uploaded every ``log_interval`` seconds), a ``mlcd_heartbeat`` metric shows it is alive,
``timeout`` ends it (exit 1, run FAILED) and ``alert_webhook`` gets a Slack-style
``{"text": ...}`` on any failure. The model is logged with a signature, an input example,
explicit pip requirements and ``metadata["mlcd"]`` (task, label, features, classes,
lineage); golden predictions go to the run artifact ``golden/samples.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd_actions.ci.lineage import Lineage
from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError, DataError, MlcdError, StageFailed, first_line
from mlcd_actions.core.files import json_safe, sha256_file
from mlcd_actions.core.results import FAILED, StageResult, Table
from mlcd_actions.models import tracking

log = logging.getLogger("mlcd")

STAGE = "train"
MODEL_NAME = "model"
GOLDEN_ARTIFACT = "golden/samples.json"
GOLDEN_SCHEMA = "mlcd.golden/v1"
LOG_ARTIFACT_DIR = "logs"
TASKS = ("auto", "classification", "regression")
SERIALIZATION_FORMATS = ("cloudpickle", "skops", "pickle")
SIGNATURE_ROWS = 200
TAIL_LINES = 15


# ---------------------------------------------------------------- inputs

def _load_params(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: params file not found", file=str(p))
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text) if text.strip() else {}
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except (ValueError, Exception) as exc:  # json.JSONDecodeError, yaml.YAMLError
        line = getattr(exc, "lineno", None)
        mark = getattr(exc, "problem_mark", None)
        line = line or (mark.line + 1 if mark is not None else None)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{p}: cannot parse params: {first}", file=str(p), line=line) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: params must be a mapping, got {type(data).__name__}",
                          file=str(p))
    return data


def data_sha256(path: str | os.PathLike) -> str:
    """sha256 of the training file; for a directory, of its table files' names and hashes."""
    from mlcd_actions.data.tables import table_files

    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    import hashlib

    h = hashlib.sha256()
    for f in table_files(p):
        h.update(f"{f.name}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _from_report(report_dir: str | os.PathLike, stage: str, output: str) -> str | None:
    path = Path(report_dir) / f"{stage}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("status") not in ("passed", "skipped"):
        return None
    value = (data.get("outputs") or {}).get(output)
    return str(value) if value not in (None, "") else None


def _check_label(df, label: str, path: str, task: str | None) -> None:
    y = df[label]
    missing = y.isna()
    if missing.all():
        raise DataError(f"{path}: label column {label!r} is empty (all values missing)",
                        file=path)
    if missing.any():
        first = int(missing.to_numpy().nonzero()[0][0])
        raise DataError(f"{path}: label column {label!r} has {int(missing.sum())} missing "
                        f"value(s), first at row {first}", file=path)
    if task == "classification" and y.nunique() < 2:
        raise DataError(f"{path}: label column {label!r} has one class only "
                        f"({y.iloc[0]!r}); a classifier needs at least two", file=path)
    if task == "regression":
        import numpy as np
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(y):
            raise DataError(f"{path}: label column {label!r} is not numeric "
                            f"({y.dtype}); a regression target must be", file=path)
        bad = ~np.isfinite(y.to_numpy(dtype=float))
        if bad.any():
            raise DataError(f"{path}: label column {label!r} has {int(bad.sum())} infinite "
                            f"value(s), first at row {int(bad.nonzero()[0][0])}", file=path)


def _builtin(estimator: str | None, task: str, label: str, *frames) -> str:
    """The built-in estimator's name, once the ``(path, frame)`` pairs are fit for it: it
    imputes missing values but cannot fit ±inf, so an infinite feature value is named by
    column and row (exit 2), as ``predict`` and ``evaluate`` do, before any run starts."""
    from mlcd_actions.training import estimators

    estimator = estimators.resolve(estimator, task)
    for path, frame in frames:
        if frame is not None:
            _check_finite_features(frame.drop(columns=[label]), str(path), estimator)
    return estimator


def _check_finite_features(features, path: str, estimator: str) -> None:
    from mlcd_actions.models.loading import non_finite_columns

    bad = non_finite_columns(features, missing=False)
    if bad:
        col, count, row = bad[0]
        more = f" (+{len(bad) - 1} more columns)" if len(bad) > 1 else ""
        raise DataError(f"{path}: feature column {col!r} has {count} infinite value(s), first "
                        f"at data row {row + 1}{more}; the built-in {estimator} cannot fit "
                        "them (replace or drop them in prepare)", file=path)


# ---------------------------------------------------------------- MLflow helpers

class _Tracker:
    """The MLflow run of one ``mlcd train``; every call goes through ``with_retries``."""

    def __init__(self, explicit: str | None, experiment: str, rest: bool = True) -> None:
        """``rest``: talk to a tracking server over plain HTTP when that is exact
        (:func:`mlcd_actions.models.tracking_rest.train_client_for`): no mlflow import."""
        from mlcd_actions.models import tracking_rest

        self.explicit = explicit
        uri = tracking.tracking_uri(explicit)
        self.client = tracking_rest.train_client_for(uri, tracking.registry_uri(
            explicit)) if rest else None
        self.rest = self.client is not None
        what = f"opening experiment {experiment!r}"
        if self.rest:
            tracking.env_defaults()
            self.uri = uri
            self.experiment_id = tracking.with_retries(
                lambda: self.client.ensure_experiment(experiment), what=what, uri=uri)
        else:
            from mlflow import MlflowClient

            self.uri = tracking.configure(explicit)
            self.client = MlflowClient(self.uri)
            self.experiment_id = tracking.with_retries(
                lambda: tracking.ensure_experiment(experiment), what=what, uri=self.uri)
        self.run_id: str | None = None

    def mlflow_ready(self) -> None:
        """Point mlflow's fluent API at the store before code that uses it (Model.log,
        set_signature, a --command's logged model); the REST tracker skipped it."""
        if self.rest:
            tracking.configure(self.explicit)

    def call(self, what: str, fn):
        return tracking.with_retries(fn, what=what, uri=self.uri)

    def start(self, run_name: str | None, tags: dict[str, str]) -> str:
        run = self.call("creating the run", lambda: self.client.create_run(
            self.experiment_id, run_name=run_name, tags=tags))
        self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        items = list(params.items())
        for i in range(0, len(items), 100):
            chunk = dict(items[i:i + 100])
            if self.rest:
                self.call("logging params", lambda c=chunk: self.client.log_batch(
                    self.run_id, params=c))
                continue
            from mlflow.entities import Param

            self.call("logging params", lambda c=chunk: self.client.log_batch(
                self.run_id, params=[Param(k, v) for k, v in c.items()]))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        kept = {k: float(v) for k, v in metrics.items() if v is not None and v == v}
        if not kept:
            return
        if self.rest:
            from mlcd_actions.models.tracking_rest import metric_json

            items = [metric_json(k, v, now, step) for k, v in kept.items()]
        else:
            from mlflow.entities import Metric

            items = [Metric(k, v, now, step) for k, v in kept.items()]
        self.call("logging metrics", lambda: self.client.log_batch(self.run_id, metrics=items))

    def set_tags(self, tags: dict[str, str]) -> None:
        kept = {k: str(v) for k, v in tags.items() if v is not None}
        if not kept:
            return
        if self.rest:
            self.call("setting tags", lambda: self.client.log_batch(self.run_id, tags=kept))
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in kept.items()]
        self.call("setting tags", lambda: self.client.log_batch(self.run_id, tags=items))

    def log_artifact(self, local: str | os.PathLike, artifact_dir: str | None) -> None:
        self.call(f"uploading {Path(local).name}", lambda: self.client.log_artifact(
            self.run_id, str(local), artifact_dir))

    def end(self, status: str) -> None:
        self.call("ending the run", lambda: self.client.set_terminated(self.run_id, status))


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            text = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
            out[key[:250]] = text[:6000]
    return out


# ---------------------------------------------------------------- alerts

def send_alert(url: str, text: str, timeout: float = 10.0) -> str | None:
    """POST ``{"text": text}`` (Slack-compatible); returns an error line or None."""
    import urllib.error
    import urllib.request

    body = json.dumps({"text": text}).encode("utf-8")
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - user's URL
            if resp.status >= 300:
                return f"alert webhook answered HTTP {resp.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"alert webhook failed: {getattr(exc, 'reason', exc)}"
    return None


# ---------------------------------------------------------------- the model

class _UserPath(contextlib.AbstractContextManager):
    """The user's directory on ``sys.path`` while their pickled model is loaded; their
    modules are forgotten afterwards (the next ``mlcd train`` in-process sees fresh code)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = str(cwd)
        self.before: set[str] = set()

    def __enter__(self):
        self.before = set(sys.modules)
        sys.path.insert(0, self.cwd)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(ValueError):
            sys.path.remove(self.cwd)
        for name in set(sys.modules) - self.before:
            file = getattr(sys.modules.get(name), "__file__", None) or ""
            if file.startswith(self.cwd + os.sep) and ".venv" not in file:
                sys.modules.pop(name, None)


def _is_sklearn(model) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - sklearn is a dependency
        return False
    return isinstance(model, BaseEstimator)


# below this many rows a prediction runs on one native thread: OpenMP's start-up and
# spin-waiting cost more than the threads save, and many times more on a busy machine
# (HistGradientBoosting, 20,000 rows, 2 cores at load 12: 5.7 s with 2 threads, 1.0 s with 1)
ONE_THREAD_ROWS = 100_000


@contextlib.contextmanager
def _native_threads_for(rows: int):
    """One native (OpenMP/BLAS) thread for predictions on fewer than ONE_THREAD_ROWS rows."""
    if rows >= ONE_THREAD_ROWS:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _final_step(model, X):
    """``(estimator, X)`` to call ``predict`` and ``predict_proba`` on: for a scikit-learn
    ``Pipeline`` whose steps can run one by one (:func:`fastpath.active_steps`), its final
    step and ``X`` through the other steps once, which is what ``Pipeline.predict`` and
    ``Pipeline.predict_proba`` each do before calling the final step; for any other
    model, ``(model, X)``."""
    module = sys.modules.get("sklearn.pipeline")
    if module is None or type(model) is not module.Pipeline:
        return model, X
    from mlcd_actions.delivery.serving.fastpath import active_steps

    steps = active_steps(model)
    if steps is None:
        return model, X
    for step in steps[:-1]:
        X = step.transform(X)
    return steps[-1], X


def _forest_votes(estimator, X):
    """``(predict_proba, predict)`` of a single-output scikit-learn forest classifier whose
    ``predict`` is the forest's own (the class of the highest mean probability, computed
    from ``predict_proba`` exactly so), from one pass over the trees; else ``(None, None)``."""
    module = sys.modules.get("sklearn.ensemble")
    if module is None or type(estimator).predict is not module.RandomForestClassifier.predict \
            or getattr(estimator, "n_outputs_", None) != 1:
        return None, None
    import numpy as np

    proba = estimator.predict_proba(X)
    return proba, estimator.classes_.take(np.argmax(proba, axis=1), axis=0)


def _predict(model, X, what: str):
    """(predictions, probabilities or None), checked. A scikit-learn Pipeline transforms
    ``X`` once for both; a forest's predictions come from its probabilities, as its own
    ``predict`` computes them."""
    from mlcd_actions.models.loading import check_predictions, check_probabilities

    try:
        final, Xt = _final_step(model, X)
        votes, raw = _forest_votes(final, Xt)
        if raw is None:
            raw = final.predict(Xt)
        preds = check_predictions(raw, len(X), what=what)
    except MlcdError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model
        raise StageFailed(f"{what} raised in predict: {type(exc).__name__}: "
                          f"{first_line(exc)}") from exc
    proba = None
    if callable(getattr(model, "predict_proba", None)):
        try:
            classes = getattr(model, "classes_", None)
            # mlcd_actions.models.loading.LoadedModel may say None
            raw = votes if votes is not None else final.predict_proba(Xt)
            proba = None if raw is None else check_probabilities(
                raw, len(X), None if classes is None else len(classes), what=what)
        except MlcdError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a regressor exposing predict_proba
            log.info("predict_proba unavailable: %s", exc)
    return preds, proba



def _metrics(task: str, y_true, y_pred, proba, classes) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    if task == "regression":
        y_true = np.asarray(y_true, dtype=float)
        y_pred = np.asarray(y_pred, dtype=float)
        out = {"rmse": float(np.sqrt(m.mean_squared_error(y_true, y_pred))),
               "mae": float(m.mean_absolute_error(y_true, y_pred))}
        if len(y_true) > 1:
            out["r2"] = float(m.r2_score(y_true, y_pred))
        return out
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    try:
        y_pred = y_pred.astype(y_true.dtype)
    except (TypeError, ValueError):
        pass
    labels = list(classes) if classes is not None else sorted(set(y_true.tolist()))
    binary = len(labels) == 2
    # text labels as integer codes: the same counts, so the same scores, without
    # scikit-learn sorting the strings again in every metric (0.3 CPU s per 20,000 rows)
    coded = _label_codes(y_true, y_pred, labels)
    yt, yp, lab = coded if coded is not None else (y_true, y_pred, labels)
    out = {"accuracy": float(m.accuracy_score(yt, yp))}
    kwargs = ({"average": "binary", "pos_label": lab[1]} if binary
              else {"average": "macro", "labels": lab})
    with np.errstate(all="ignore"):
        # what f1_score, precision_score and recall_score each compute and keep one of
        precision, recall, f1, _ = m.precision_recall_fscore_support(
            yt, yp, beta=1.0, zero_division=0, **kwargs)
        out["f1"] = float(f1)
        out["precision"] = float(precision)
        out["recall"] = float(recall)
    if proba is not None and binary and len(set(y_true.tolist())) == 2:
        with contextlib.suppress(ValueError):
            out["roc_auc"] = float(m.roc_auc_score(y_true == labels[1], proba[:, 1]))
    return out


def _label_codes(y_true, y_pred, labels: list):
    """``(y_true, y_pred, labels)`` as integer codes, ``labels`` first in their order, when
    every value is a ``str`` and the labels are distinct; else None. Codes map one-to-one
    to the values, so every count (and score) is the same; only the sorting is cheaper."""
    import numpy as np
    import pandas as pd

    if y_true.dtype.kind not in "OU" or y_pred.dtype.kind not in "OU" \
            or not all(isinstance(v, str) for v in labels) or len(set(labels)) != len(labels):
        return None
    values = np.concatenate([y_true.astype(object), y_pred.astype(object)])
    if pd.api.types.infer_dtype(values, skipna=False) != "string":
        return None
    seen = dict.fromkeys(labels)
    seen.update(dict.fromkeys(pd.unique(values).tolist()))
    index = pd.Index(list(seen), dtype=object)
    codes = index.get_indexer(values).astype(np.int64)
    return codes[:len(y_true)], codes[len(y_true):], list(range(len(labels)))


def _plain_records(df) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts: NaN/NaT -> None, numpy/pandas scalars -> Python."""
    import pandas as pd

    frame = df.astype(object).where(pd.notna(df), None)
    return json_safe(frame.to_dict(orient="records"))


def _plain_list(values) -> list:
    import numpy as np

    out = []
    for v in np.asarray(values).tolist():
        out.append(None if isinstance(v, float) and v != v else v)
    return out


# ---------------------------------------------------------------- run

def run(train: str, *, label: str | None = None, entrypoint: str | None = None,
        command: str | None = None, estimator: str | None = None, task: str = "auto",
        params_file: str | None = None, test: str | None = None, experiment: str = "mlcd",
        run_name: str | None = None, data_version: str | None = None,
        code_version: str | None = None, timeout: float | None = None,
        alert_webhook: str | None = None, tracking_uri: str | None = None,
        report_dir: str | os.PathLike = ".mlcd/reports", log_interval: float = 10.0,
        golden_rows: int = 32, serialization_format: str = "cloudpickle",
        extra_pip_requirements: list[str] | tuple[str, ...] = (),
        echo_log: bool = True) -> StageResult:
    """Train, track and log the model; see the module docstring."""
    t_start = time.monotonic()
    mode, task = _check_options(label=label, entrypoint=entrypoint, command=command,
                                estimator=estimator, task=task,
                                serialization_format=serialization_format)
    if timeout is not None and timeout <= 0:
        timeout = None
    if alert_webhook:
        secrets.register(alert_webhook)

    # -- data
    train_df, test_df, task = _read_data(train, test, label, task)
    if mode == "builtin":
        estimator = _builtin(estimator, task, label, (train, train_df), (test, test_df))
    params = _load_params(params_file)
    user_params = dict(params)
    params = {**params, "label": label, "task": task}
    if mode == "builtin":
        params["estimator"] = estimator

    t_read = time.monotonic()
    cwd = Path.cwd().resolve()

    # -- start training now: it fits while we take the lineage and set up the MLflow run
    work = Path(tempfile.mkdtemp(prefix="mlcd-train-"))
    try:
        job = _Job(work, cwd=cwd, mode=mode, train=train, test=test, label=label, task=task,
                   entrypoint=entrypoint, command=command, estimator=estimator, params=params,
                   train_df=train_df if mode == "builtin" else None)
        if mode != "command":
            job.start(echo=echo_log)
        t_child = time.monotonic()

        # -- lineage and tracking
        try:
            lineage = _lineage(train, cwd, report_dir, code_version=code_version,
                               data_version=data_version)
            tracker = _Tracker(tracking_uri, experiment, rest=mode != "command")
            trainer = str(entrypoint or command or estimator)
            run_id = tracker.start(run_name, _run_tags(lineage, task=task, label=label,
                                                       mode=mode, trainer=trainer))
        except BaseException as exc:
            job.abort()
            if isinstance(exc, MlcdError):
                _alert(alert_webhook, f"mlcd train failed — {exc.one_line()}",
                       StageResult(STAGE))
            raise
        lineage = lineage.replace(run_id=run_id, experiment_id=tracker.experiment_id)
        result = StageResult(STAGE, lineage=lineage.to_dict())
        t_setup = time.monotonic()
        # phases: reading and checking the data; starting the training; the lineage,
        # opening the tracking store and creating the run (all three: setup_s)
        result.details["timings"] = {
            "setup_s": round(t_setup - t_start, 3), "read_s": round(t_read - t_start, 3),
            "start_training_s": round(t_child - t_read, 3),
            "tracking_s": round(t_setup - t_child, 3)}
        result.details["training_process"] = job.process
        result.outputs.update({"run-id": run_id, "experiment-id": tracker.experiment_id,
                               "lineage-id": lineage.id})
        try:
            job.attach(tracker)
            if mode == "command":
                job.start(echo=echo_log)
            _run(result, tracker, lineage, job, test_df=test_df, train_df=train_df,
                 user_params=user_params, timeout=timeout, log_interval=log_interval,
                 golden_rows=golden_rows, serialization_format=serialization_format,
                 extra_pip_requirements=extra_pip_requirements)
        except BaseException as exc:
            job.abort()
            reason = exc.one_line() if isinstance(exc, MlcdError) else \
                f"{type(exc).__name__}: {first_line(exc)}"
            with contextlib.suppress(Exception):
                tracker.set_tags({"mlcd.failure": reason[:5000]})
            with contextlib.suppress(Exception):
                tracker.end("FAILED")
            _alert(alert_webhook, f"mlcd train failed — {reason} (run {run_id}, "
                   f"experiment {tracker.experiment_id}, lineage {lineage.id})", result)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if result.status == FAILED:
        with contextlib.suppress(Exception):
            tracker.set_tags({"mlcd.failure": result.reason[:5000]})
        with contextlib.suppress(Exception):
            tracker.end("FAILED")
        _alert(alert_webhook, f"mlcd train failed — {result.reason} (run {run_id}, "
               f"experiment {tracker.experiment_id}, lineage {lineage.id})", result)
    else:
        tracker.end("FINISHED")
    return result


def _read_data(train: str, test: str | None, label: str, task: str):
    """(train frame, test frame or None, task): the label is there and usable, the test set
    has every training column."""
    from mlcd_actions.data import tables as tabular
    from mlcd_actions.training import estimators

    train_df = tabular.read_table(train, what="training data")
    tabular.require_columns(train_df, [label], train, role="label column")
    if train_df.empty:
        raise DataError(f"{train}: training data has no rows", file=str(train))
    if train_df.shape[1] < 2:
        raise DataError(f"{train}: training data has only the label column {label!r}; "
                        "there is nothing to learn from", file=str(train))
    if task == "auto":
        task = estimators.infer_task(train_df[label])
    _check_label(train_df, label, str(train), task)
    test_df = None
    if test:
        test_df = tabular.read_table(test, what="test data")
        tabular.require_columns(test_df, [label], test, role="label column")
        if test_df.empty:
            raise DataError(f"{test}: test data has no rows", file=str(test))
        _check_label(test_df, label, str(test), None)
        missing = [c for c in train_df.columns if c not in test_df.columns]
        if missing:
            raise DataError(f"{test}: feature column {missing[0]!r} of the training data is "
                            f"missing from the test data", file=str(test))
    return train_df, test_df, task


def _check_options(*, label: str | None, entrypoint: str | None, command: str | None,
                   estimator: str | None, task: str,
                   serialization_format: str) -> tuple[str, str]:
    """Option errors before anything is read; returns (mode, task)."""
    if entrypoint and command:
        raise ConfigError("give --entrypoint or --command, not both")
    if estimator and (entrypoint or command):
        raise ConfigError("--estimator names a built-in model; it cannot be combined with "
                          "--entrypoint or --command")
    if entrypoint and (":" not in entrypoint or not all(entrypoint.split(":", 1))):
        raise ConfigError(f"--entrypoint {entrypoint!r} must look like module:function")
    task = (task or "auto").lower()
    if task not in TASKS:
        raise ConfigError(f"--task {task!r}: choose one of {', '.join(TASKS)}")
    if serialization_format not in SERIALIZATION_FORMATS:
        raise ConfigError(f"--serialization-format {serialization_format!r}: choose one of "
                          f"{', '.join(SERIALIZATION_FORMATS)}")
    if not label:
        raise ConfigError("--label is required: the column the model predicts")
    return ("entrypoint" if entrypoint else "command" if command else "builtin"), task


def _lineage(train: str, cwd: Path, report_dir: str | os.PathLike, *,
             code_version: str | None, data_version: str | None) -> Lineage:
    """Data hash, git commit, code and data versions (from the earlier stages' reports
    when not given)."""
    from mlcd_actions.ci import gitinfo

    code_version = code_version or _from_report(report_dir, "build-training", "version")
    data_version = data_version or _from_report(report_dir, "version-data", "data-version")
    git_sha = gitinfo.context(cwd, os.environ).sha or gitinfo.git_sha(cwd)
    return Lineage(data_sha256=data_sha256(train), git_sha=git_sha,
                   code_version=code_version, data_version=data_version,
                   data_path=str(train))


def _run_tags(lineage: Lineage, *, task: str, label: str, mode: str,
              trainer: str) -> dict[str, str]:
    """The MLflow run's tags: lineage, task, label, who trained, the source commit."""
    tags = {**lineage.to_tags(), "mlcd.task": task, "mlcd.label": label,
            "mlcd.mode": mode, "mlcd.stage": STAGE, "mlcd.trainer": trainer}
    if lineage.git_sha:
        tags["mlflow.source.git.commit"] = lineage.git_sha
    tags["mlflow.source.name"] = f"mlcd train ({mode}: {trainer})"
    tags["mlflow.source.type"] = "JOB"
    return tags


def _alert(url: str | None, text: str, result: StageResult) -> None:
    if not url:
        return
    error = send_alert(url, secrets.mask(text))
    if error:
        result.warnings.append(secrets.mask(error))
        log.warning("%s", secrets.mask(error))


# what loading the child's model and logging it import, warmed while the child trains
WARM_MODULES = (
    "cloudpickle", "mlflow.models", "mlflow.pyfunc", "mlflow.sklearn", "sklearn.metrics",
    "sklearn.pipeline",
    # a built-in Pipeline, unpickled
    "sklearn.compose", "sklearn.impute", "sklearn.preprocessing",
    # MLflow's logged model: the git context (GitPython), the serving-input check
    "git", "mlflow.models.utils", "mlflow.pyfunc.scoring_server",
)


# what logging a built-in estimator's model imports (training.logged_model)
LIGHT_WARM_MODULES = (
    "cloudpickle", "sklearn.metrics", "sklearn.pipeline", "sklearn.compose", "sklearn.impute",
    "sklearn.preprocessing", "yaml", "git", "mlflow.entities",
    "mlflow.tracking.context.registry",
)


# the built-in estimators' pipeline pieces and what pickles them
BUILTIN_MODULES = ("cloudpickle", "sklearn.pipeline", "sklearn.compose", "sklearn.impute",
                   "sklearn.preprocessing")


def _warm_imports(estimator: str | None = None, rest: bool = False) -> None:
    """Import what logging the model needs while the child trains (2 cores: free time),
    and read the installed distributions once for the pip requirements."""
    import importlib

    from mlcd_actions.training import estimators, requirements

    builtin = estimator in estimators.BUILTINS
    # a built-in Pipeline is written by training.sklearn_model: no mlflow.sklearn, no
    # requirement checks (the rare model it cannot write imports them when logged)
    names = [n for n in (LIGHT_WARM_MODULES if builtin else WARM_MODULES)
             if not (rest and builtin and n.startswith("mlflow"))]  # REST: no mlflow at all
    if builtin:  # the model class's own module
        names.append(estimators.BUILTINS[estimator][1].partition(":")[0])
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        requirements.installed()
    if builtin:
        return
    with contextlib.suppress(Exception):
        from mlflow.models import infer_signature  # noqa: F401
        from mlflow.utils import requirements_utils

        # MLflow checks the pinned requirements against the installed packages; the map
        # it builds for that (importlib_metadata.packages_distributions, ~1 s) is cached
        requirements_utils._init_packages_to_modules_map()
    with contextlib.suppress(Exception), _quiet_mlflow():
        from mlcd_actions.training import pyfunc  # noqa: F401


def _tail(path: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ln for ln in lines if ln.strip()][-n:]


def _failure_md(title: str, lines: list[str]) -> str:
    body = "\n".join(secrets.mask(ln) for ln in lines) or "(no output)"
    return f"### {title}\n\n```text\n{body}\n```"


class _Job:
    """The training process: our child (started before the MLflow run exists; for an
    ``--entrypoint`` told the run through a file before the user's code is imported, a
    built-in estimator fits at once) or the user's ``--command`` (started once the run
    exists)."""

    def __init__(self, work: Path, *, cwd: Path, mode: str, train: str, test: str | None,
                 label: str, task: str, entrypoint: str | None, command: str | None,
                 estimator: str | None, params: dict[str, Any], train_df=None) -> None:
        self.work, self.cwd, self.mode = work, cwd, mode
        self.train_df = train_df  # a built-in estimator's frame, for a forked child
        self.entrypoint, self.command, self.estimator = entrypoint, command, estimator
        self.label, self.task = label, task
        self.out_dir = work / "out"
        self.out_dir.mkdir()
        self.log_path = work / "train.log"
        self.run_file = work / "run.json"
        params_path = work / "params.json"
        params_path.write_text(json.dumps(json_safe(params), indent=2), encoding="utf-8")
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                            f"{os.environ.get('PATH', '')}",
                    "MLCD_TRAIN_PATH": str(Path(train).resolve()),
                    "MLCD_PARAMS_PATH": str(params_path), "MLCD_OUTPUT_DIR": str(self.out_dir),
                    "MLCD_LABEL": label, "MLCD_TASK": task}
        for var in ("MLCD_TEST_PATH", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
            self.env.pop(var, None)
        if test:
            self.env["MLCD_TEST_PATH"] = str(Path(test).resolve())
        if mode == "command":
            self.cmd: str | list[str] = command  # type: ignore[assignment]
        else:
            # the user's function may use the MLflow run: it waits for it; a built-in
            # estimator does not, and fits while this process sets the run up
            spec = {"mode": mode, "entrypoint": entrypoint, "estimator": estimator,
                    "train_path": str(Path(train).resolve()), "label": label,
                    "params": json_safe(params), "out_dir": str(self.out_dir),
                    "cwd": str(cwd),
                    "run_file": str(self.run_file) if mode == "entrypoint" else None}
            self.spec = spec
            spec_path = work / "spec.json"
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            self.cmd = [sys.executable, "-m", "mlcd_actions.training.child", str(spec_path)]
        self.child = None
        self.attached_at: float | None = None
        self.process = "command" if mode == "command" else None  # or "fork", "spawn"

    def start(self, echo: bool, fork: bool | None = None) -> None:
        """Start the training. A built-in estimator on Linux, from a one-thread process
        (``fork=None``: when :func:`runner.can_fork`), is fitted in a fork of this process:
        the frame is read and pandas and scikit-learn imported once, not twice."""
        from mlcd_actions.training import runner

        if fork is None:
            fork = self.mode == "builtin" and self.train_df is not None and runner.can_fork()
        if fork:
            import importlib

            from mlcd_actions.training import child, estimators

            # what the fit needs and this process needs next (load, score): imported once
            for name in (*BUILTIN_MODULES, estimators.BUILTINS[self.estimator][1]
                         .partition(":")[0]):
                importlib.import_module(name)
            spec, frame = self.spec, self.train_df
            log.info("mlcd train: fitting %s in a forked process", self.estimator)
            self.child = runner.Child.fork(lambda: child.run(spec, frame),
                                           log_path=self.log_path, echo=echo)
            self.process = "fork"
            return
        self.process = self.process or "spawn"
        log.info("mlcd train: running %s", self.cmd)
        self.child = runner.Child(self.cmd, env=self.env, cwd=self.cwd, log_path=self.log_path,
                                  echo=echo)

    def _write_run_file(self, data: dict) -> None:
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.run_file)

    def attach(self, tracker: _Tracker) -> None:
        run_env = {"MLFLOW_RUN_ID": tracker.run_id, "MLFLOW_TRACKING_URI": tracker.uri,
                   "MLFLOW_EXPERIMENT_ID": tracker.experiment_id}
        self.env.update(run_env)
        self.attached_at = time.monotonic()
        if self.mode != "command":
            self._write_run_file({"env": run_env})

    def abort(self) -> None:
        if self.child is not None and self.child.proc.poll() is None:
            with contextlib.suppress(OSError):
                if not self.run_file.exists():
                    self._write_run_file({"abort": True})
            self.child.kill()


def _run(result: StageResult, tracker: _Tracker, lineage: Lineage, job: _Job, *, train_df,
         test_df, user_params: dict[str, Any], timeout: float | None, log_interval: float,
         golden_rows: int, serialization_format: str, extra_pip_requirements) -> None:
    run_id = tracker.run_id
    log_path, out_dir = job.log_path, job.out_dir
    entrypoint, command, estimator = job.entrypoint, job.command, job.estimator
    label, task = job.label, job.task
    tracker.log_params(_flat({**user_params, "label": label, "task": task,
                              **({"estimator": estimator} if estimator else {})}))

    def tick(elapsed: float) -> None:
        try:
            tracker.client.log_metric(run_id, "mlcd_heartbeat", round(elapsed, 1),
                                      step=int(elapsed))
            tracker.client.log_artifact(run_id, str(log_path), LOG_ARTIFACT_DIR)
        except Exception as exc:  # noqa: BLE001 - never stop training for a heartbeat
            log.warning("heartbeat to %s failed: %s", tracker.uri, first_line(exc))

    warm = threading.Thread(target=_warm_imports, args=(estimator, tracker.rest), daemon=True)
    warm.start()
    # --timeout and the heartbeat count from the moment the training may start (the run
    # exists); our child has been importing and reading data in the meantime
    outcome = job.child.wait(timeout=timeout, interval=log_interval, on_tick=tick,
                             since=job.attached_at)
    warm.join()
    error_file = out_dir / "error.json"
    if outcome.returncode and error_file.is_file():  # the logs keep the traceback
        with contextlib.suppress(OSError, ValueError), open(log_path, "a", encoding="utf-8") as fh:
            full = json.loads(error_file.read_text(encoding="utf-8")).get("full_traceback")
            if full:
                fh.write(full)
                log.error("mlcd train: the training raised\n%s", secrets.mask(full))
    tick(outcome.seconds)
    result.metrics["train_seconds"] = round(outcome.seconds, 3)
    result.artifacts.append(f"runs:/{run_id}/{LOG_ARTIFACT_DIR}/{log_path.name}")
    if outcome.timed_out:
        result.status = FAILED
        result.reason = (f"training timed out after {timeout:g}s (--timeout); the process "
                         f"was stopped, run {run_id} marked FAILED")
        result.markdown.append(_failure_md("Last lines of the training log", _tail(log_path)))
        return
    if outcome.returncode != 0:
        result.status = FAILED
        if error_file.is_file():
            err = json.loads(error_file.read_text(encoding="utf-8"))
            kind = err.get("kind", "raised")
            if kind == "usage":
                raise ConfigError(err["message"])
            if kind == "contract":
                result.reason = err["message"]
                return
            where = entrypoint or estimator
            result.reason = f"{where} raised {err['type']}: {err['message']}"
            result.markdown.append(_failure_md("Traceback (last lines)", err["traceback"]))
            result.details["traceback"] = [secrets.mask(x) for x in err["traceback"]]
        else:
            tail = _tail(log_path)
            last = tail[-1] if tail else "no output"
            result.reason = (f"training command exited with code {outcome.returncode}: "
                             f"{secrets.mask(last)}")
            result.markdown.append(_failure_md("Last lines of the training log", tail))
            result.details["log_tail"] = [secrets.mask(x) for x in tail]
        return

    # -- the model
    t_log = time.monotonic()
    result.details["timings"]["training_s"] = round(outcome.seconds, 3)
    trainer = _Trainer(mode=job.mode, label=label, task=task, estimator=estimator,
                       entrypoint=entrypoint, command=command, user_params=user_params,
                       golden_rows=golden_rows, serialization_format=serialization_format,
                       extra_pip_requirements=list(extra_pip_requirements))
    _log_model(result, tracker, lineage, trainer, work=job.work, out_dir=out_dir,
               cwd=job.cwd, train_df=train_df, test_df=test_df)
    result.details["timings"]["logging_s"] = round(time.monotonic() - t_log, 3)


def _find_saved_model(out_dir: Path) -> Path | None:
    candidates = sorted(out_dir.glob("MLmodel")) + sorted(out_dir.glob("*/MLmodel")) + \
        sorted(out_dir.glob("*/*/MLmodel"))
    return candidates[0].parent if candidates else None


def _logged_models_of(tracker: _Tracker):
    def search():
        return tracker.client.search_logged_models(
            experiment_ids=[tracker.experiment_id],
            filter_string=f"source_run_id = '{tracker.run_id}'", max_results=50)

    models = list(tracker.call("searching the run's logged models", search))
    return sorted(models, key=lambda m: (m.name != MODEL_NAME, -(m.creation_timestamp or 0)))


@dataclass
class _Trainer:
    """How the model was trained and is to be logged (what ``_log_model`` needs besides
    the run and the data)."""

    mode: str                      # builtin, entrypoint or command
    label: str
    task: str
    estimator: str | None
    entrypoint: str | None
    command: str | None
    user_params: dict[str, Any]
    golden_rows: int
    serialization_format: str
    extra_pip_requirements: list[str]

    @property
    def name(self) -> str | None:
        return self.entrypoint or self.command or self.estimator


@dataclass
class _Trained:
    """The model the training left: a Python object with ``predict`` (entrypoint, built-in,
    a --command's scikit-learn directory), a --command's non-sklearn MLflow model directory,
    or a model the --command logged to the run itself."""

    model: Any = None
    saved_dir: Path | None = None
    logged: Any = None
    child_info: dict[str, Any] = field(default_factory=dict)
    code_paths: list[str] = field(default_factory=list)
    extra_reqs: list[str] = field(default_factory=list)


@dataclass
class _Scores:
    """Predictions for the signature, the golden samples and the metrics."""

    predictor: Any
    sig_X: Any
    sig_pred: Any
    classes: list | None
    metrics: dict[str, float]
    gold_pred: Any
    gold_proba: Any


def _log_model(result: StageResult, tracker: _Tracker, lineage: Lineage, trainer: _Trainer, *,
               work: Path, out_dir: Path, cwd: Path, train_df, test_df) -> None:
    from mlcd_actions.training.requirements import pip_requirements

    label, task = trainer.label, trainer.task
    X_train = train_df.drop(columns=[label])
    features = [str(c) for c in X_train.columns]
    sample_src = test_df if test_df is not None else train_df
    golden_df = sample_src.head(max(1, trainer.golden_rows))
    X_golden = golden_df[X_train.columns]
    timings = result.details["timings"]
    t0 = time.monotonic()
    with _UserPath(cwd):
        trained = _load_trained(tracker, out_dir, cwd, trainer)
        t1 = time.monotonic()
        scorer = _Scorer(trained, tracker, trainer, train_df, test_df, X_train, X_golden)
        scores = scorer.signature()
        metadata = {"mlcd": {
            "task": task, "label": label, "features": features, "feature_columns": features,
            "classes": scores.classes, "lineage_id": lineage.id, "run_id": tracker.run_id,
            "trainer": trainer.name, "mode": trainer.mode,
            "data_sha256": lineage.data_sha256, "data_version": lineage.data_version,
            "git_sha": lineage.git_sha, "code_version": lineage.code_version,
        }}
        input_example = X_train.head(5) if test_df is None else test_df[X_train.columns].head(5)

        reqs = pip_requirements(trained.child_info.get("modules", []), trained.extra_reqs)
        plan = _light_plan(trained, trainer, scores, input_example, reqs)
        signature = None
        if plan is None:
            from mlflow.models import infer_signature

            with _quiet_mlflow():
                signature = infer_signature(scores.sig_X, scores.sig_pred)

        def save() -> tuple[tuple[str, str, str], float]:
            start = time.monotonic()
            saved = _save_model(result, tracker, trainer, trained, scores.predictor,
                                signature=signature, input_example=input_example, reqs=reqs,
                                metadata=metadata, plan=plan)
            return saved, time.monotonic() - start

        if plan is not None and trainer.mode == "builtin":
            # a built-in Pipeline written by training.sklearn_model: scored while its
            # directory is written and uploaded (both only read the model: scikit-learn's
            # predict and predict_proba change no attribute of a fitted estimator)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1, thread_name_prefix="mlcd-log-model") as pool:
                saving = pool.submit(save)
                try:
                    scorer.rest(scores)
                except Exception:
                    with contextlib.suppress(Exception):  # the scoring error is the one told
                        saving.result()
                    raise
                (model_uri, model_id, flavor), log_s = saving.result()
        else:
            scorer.rest(scores)
            (model_uri, model_id, flavor), log_s = save()
        timings.update(load_model_s=round(t1 - t0, 3), score_s=round(scorer.seconds, 3),
                       log_model_s=round(log_s, 3))

    t3 = time.monotonic()
    _write_golden(tracker, work, trainer, model_uri=model_uri, lineage=lineage,
                  features=features, scores=scores, golden_df=golden_df, X_golden=X_golden)
    child_info = trained.child_info
    meta_path = work / "mlcd" / "metadata.json"
    meta_path.parent.mkdir()
    meta = {**metadata["mlcd"], "model_uri": model_uri, "model_id": model_id,
            "flavor": flavor, "pip_requirements": reqs if trained.logged is None else None,
            "fit_seconds": child_info.get("fit_seconds"),
            "model_class": child_info.get("model_class")}
    meta_path.write_text(json.dumps(json_safe(meta), indent=2), encoding="utf-8")
    tracker.log_artifact(meta_path, "mlcd")
    metrics = scores.metrics
    metrics["train_rows"] = float(len(train_df))
    if test_df is not None:
        metrics["test_rows"] = float(len(test_df))
    if child_info.get("fit_seconds") is not None:
        metrics["fit_seconds"] = float(child_info["fit_seconds"])
    tracker.log_metrics(metrics)
    classes = scores.classes
    tracker.set_tags({"mlcd.model_uri": model_uri, "mlcd.model_id": model_id,
                      "mlcd.features": json.dumps(features)[:5000],
                      **({"mlcd.classes": json.dumps(json_safe(classes))[:5000]}
                         if classes is not None else {})})
    timings["finish_s"] = round(time.monotonic() - t3, 3)  # golden, metadata, metrics, tags
    result.lineage = lineage.replace(model_uri=model_uri).to_dict()
    result.details.update({"task": task, "label": label, "features": features,
                           "classes": classes, "flavor": flavor, "pip_requirements": reqs,
                           "tracking_uri": secrets.mask(tracker.uri), "mode": trainer.mode,
                           "user_params": json_safe(trainer.user_params)})
    _describe_model(result, trainer, tracker.run_id, model_uri, model_id, metrics)


def _load_trained(tracker: _Tracker, out_dir: Path, cwd: Path, trainer: _Trainer) -> _Trained:
    """Load back what the training child (or the --command) left in ``out_dir``."""
    trained = _Trained(extra_reqs=list(trainer.extra_pip_requirements))
    if trainer.mode != "command":
        result_file = out_dir / "result.json"
        if not result_file.is_file():
            raise StageFailed(f"the training process ended without a model (did "
                              f"{trainer.entrypoint or trainer.estimator} call sys.exit?)")
        trained.child_info = json.loads(result_file.read_text(encoding="utf-8"))
        try:
            with open(out_dir / "model.pkl", "rb") as fh:
                trained.model, referenced = _unpickle(fh)
        except Exception as exc:  # noqa: BLE001 - user classes that cannot be re-imported
            raise StageFailed(f"the trained model cannot be loaded back: "
                              f"{type(exc).__name__}: {first_line(exc)}") from exc
        # requirements: what loading the model imports; for the user's function, also what
        # their training imported (predict may import more). The built-in estimator's are
        # exactly the pickle's, whether its child was forked or started afresh.
        trained.child_info["modules"] = sorted(
            referenced if trainer.mode == "builtin"
            else referenced | set(trained.child_info.get("modules", [])))
        trained.code_paths = [str(cwd / f) for f in trained.child_info.get("user_files", [])]
        return trained
    saved_dir = _find_saved_model(out_dir)
    if saved_dir is None:
        found = _logged_models_of(tracker)
        if not found:
            raise StageFailed(
                f"training command {trainer.command!r} exited 0 but saved no MLflow model to "
                f"$MLCD_OUTPUT_DIR and logged none to run {tracker.run_id}")
        trained.logged = found[0]
        return trained
    trained.saved_dir = saved_dir
    from mlflow.models import Model

    flavors = Model.load(str(saved_dir)).flavors or {}
    if "sklearn" in flavors:
        import mlflow.sklearn

        trained.model = mlflow.sklearn.load_model(str(saved_dir))
        user_reqs = saved_dir / "requirements.txt"
        if user_reqs.is_file():  # the script's own pins win over ours
            trained.extra_reqs = [
                *trained.extra_reqs,
                *(ln.strip() for ln in user_reqs.read_text().splitlines()
                  if ln.strip() and not ln.startswith(("#", "-")))]
        trained.saved_dir = None
    return trained


def _unpickle(fh) -> tuple[Any, set[str]]:
    """(the object, the top-level non-standard modules its pickle references)."""
    import pickle

    import cloudpickle  # noqa: F401 - its reducers (functions by value) must be importable

    referenced: set[str] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            referenced.add(module.partition(".")[0])
            return super().find_class(module, name)

    obj = Recording(fh).load()
    return obj, referenced - set(sys.stdlib_module_names) - {"__main__", "mlcd_actions"}


class _Scorer:
    """The model's predictions: first for the signature (and its classes), then the
    train/test metrics and the golden samples; ``seconds`` is the time spent in both."""

    def __init__(self, trained: _Trained, tracker: _Tracker, trainer: _Trainer, train_df,
                 test_df, X_train, X_golden) -> None:
        self.trained, self.trainer = trained, trainer
        self.train_df, self.test_df, self.X_train, self.X_golden = (train_df, test_df,
                                                                    X_train, X_golden)
        self.seconds = 0.0
        start = time.monotonic()
        if trained.model is not None:
            self.predictor = trained.model
            self.what = (f"the model from "
                         f"{trainer.entrypoint or trainer.estimator or trainer.command}")
        else:
            from mlcd_actions.models import loading as mlcd_models

            uri = (str(trained.saved_dir) if trained.saved_dir is not None
                   else f"models:/{trained.logged.model_id}")
            self.predictor = mlcd_models.load(uri, tracking_uri=tracker.uri)
            self.what = f"the model saved by {trainer.command!r}"
        self.rows = max(len(X_train), 0 if test_df is None else len(test_df))
        self.seconds += time.monotonic() - start

    def signature(self) -> _Scores:
        """Predictions on the first SIGNATURE_ROWS training rows, and the classes."""
        start = time.monotonic()
        label, task, model = self.trainer.label, self.trainer.task, self.trained.model
        predictor = self.predictor
        sig_X = self.X_train.head(SIGNATURE_ROWS)
        with _native_threads_for(self.rows):
            sig_pred, _ = _predict(predictor, sig_X, self.what)
        classes = None
        if task == "classification":
            raw = getattr(model, "classes_", None) if model is not None else None
            if raw is None and model is None:
                raw = predictor.classes
            if raw is None:
                raw = sorted(self.train_df[label].dropna().unique().tolist(), key=str)
            classes = _plain_list(raw)
        self.seconds += time.monotonic() - start
        return _Scores(predictor, sig_X, sig_pred, classes, {}, None, None)

    def rest(self, scores: _Scores) -> None:
        """The train (and test) metrics and the golden predictions, into ``scores``."""
        start = time.monotonic()
        label, task, what = self.trainer.label, self.trainer.task, self.what
        predictor, classes, X_train = scores.predictor, scores.classes, self.X_train
        train_df, test_df = self.train_df, self.test_df
        with _native_threads_for(self.rows):
            train_pred, train_proba = _predict(predictor, X_train, what)
            metrics = {f"train_{k}": v for k, v in
                       _metrics(task, train_df[label], train_pred, train_proba,
                                classes).items()}
            if test_df is not None:
                X_test = test_df[X_train.columns]
                test_pred, test_proba = _predict(predictor, X_test, what)
                metrics.update({f"test_{k}": v for k, v in
                                _metrics(task, test_df[label], test_pred, test_proba,
                                         classes).items()})
            scores.gold_pred, scores.gold_proba = _predict(predictor, self.X_golden, what)
        scores.metrics.update(metrics)
        self.seconds += time.monotonic() - start


def _light_plan(trained: _Trained, trainer: _Trainer, scores: _Scores, input_example,
                reqs: list[str]):
    """The model directory :mod:`mlcd_actions.training.sklearn_model` writes exactly as
    ``mlflow.sklearn`` would, or None (mlflow writes it)."""
    model = trained.model
    if model is None or trained.saved_dir is not None or trained.logged is not None \
            or not _is_sklearn(model):
        return None
    from mlcd_actions.training import sklearn_model

    return sklearn_model.plan(model, scores.sig_X, scores.sig_pred, input_example, reqs,
                              serialization_format=trainer.serialization_format,
                              code_paths=trained.code_paths)


def _save_model(result: StageResult, tracker: _Tracker, trainer: _Trainer, trained: _Trained,
                predictor, *, signature, input_example, reqs: list[str],
                metadata: dict, plan=None) -> tuple[str, str, str]:
    """Log the model to the run (or keep the one the --command logged, adding a signature
    when it has none); returns (model URI, model id, flavor)."""
    run_id, logged, model = tracker.run_id, trained.logged, trained.model
    if plan is None:
        tracker.mlflow_ready()
    if logged is not None:
        model_id = logged.model_id
        if predictor.signature is None:
            try:
                from mlflow.models import set_signature

                with _quiet_mlflow():
                    tracker.call("adding the signature", lambda: set_signature(
                        f"models:/{model_id}", signature))
            except MlcdError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the user's model as it is
                result.warnings.append(f"the model {trainer.command!r} logged has no signature "
                                       f"and none could be added: {first_line(exc)}")
        return f"runs:/{run_id}/{logged.name}", model_id, "logged-by-command"
    if plan is not None:
        from mlcd_actions.training import logged_model

        info = tracker.call("logging the model", lambda: logged_model.log(
            tracker.client, model, plan, experiment_id=tracker.experiment_id, run_id=run_id,
            name=MODEL_NAME, metadata=metadata))
        return f"runs:/{run_id}/{MODEL_NAME}", info.model_id, "sklearn"
    with _quiet_mlflow(), _env(MLFLOW_EXPERIMENT_ID=tracker.experiment_id):
        info = _log(model, trained.saved_dir, run_id=run_id, signature=signature,
                    input_example=input_example, reqs=reqs, metadata=metadata,
                    code_paths=trained.code_paths,
                    serialization_format=trainer.serialization_format, tracker=tracker)
    flavor = "sklearn" if model is not None and _is_sklearn(model) else "python_function"
    return f"runs:/{run_id}/{MODEL_NAME}", info.model_id, flavor


def _write_golden(tracker: _Tracker, work: Path, trainer: _Trainer, *, model_uri: str,
                  lineage: Lineage, features: list[str], scores: _Scores, golden_df,
                  X_golden) -> None:
    """The golden samples smoke tests compare a deployment with (artifact ``golden/``)."""
    gold_proba = scores.gold_proba
    golden = {
        "schema": GOLDEN_SCHEMA, "model_uri": model_uri, "run_id": tracker.run_id,
        "lineage_id": lineage.id, "task": trainer.task, "label": trainer.label,
        "features": features, "classes": scores.classes, "rows": len(X_golden),
        "inputs": _plain_records(X_golden), "predictions": _plain_list(scores.gold_pred),
        "probabilities": None if gold_proba is None else json_safe(gold_proba.tolist()),
        "expected": _plain_list(golden_df[trainer.label]),
    }
    golden_path = work / "golden" / "samples.json"
    golden_path.parent.mkdir()
    golden_path.write_text(json.dumps(golden, indent=1, allow_nan=False), encoding="utf-8")
    tracker.log_artifact(golden_path, "golden")


def _describe_model(result: StageResult, trainer: _Trainer, run_id: str, model_uri: str,
                    model_id: str, metrics: dict[str, float]) -> None:
    """Outputs, metrics table and the reason of a logged model."""
    result.metrics.update({k: round(v, 6) for k, v in metrics.items()})
    result.outputs.update({"model-uri": model_uri, "model-id": model_id, "task": trainer.task,
                           "golden-samples": f"runs:/{run_id}/{GOLDEN_ARTIFACT}"})
    result.artifacts.extend([f"runs:/{run_id}/{GOLDEN_ARTIFACT}",
                             f"runs:/{run_id}/mlcd/metadata.json"])
    shown = {k: v for k, v in metrics.items() if not k.endswith("_rows")}
    result.tables.append(Table("Metrics", ["metric", "value"],
                               [[k, round(v, 4)] for k, v in shown.items()]))
    headline = next((f"{k} {metrics[k]:.4g}" for k in
                     ("test_accuracy", "test_rmse", "train_accuracy", "train_rmse")
                     if k in metrics), "")
    result.reason = (f"{trainer.task} model from {trainer.name} logged as "
                     f"{model_uri}" + (f"; {headline}" if headline else ""))


@contextlib.contextmanager
def _env(**values: str):
    """Set env vars for a block. MLflow puts a logged model in the *current* experiment,
    not the run's, unless told: ``runs:/<run>/model`` only resolves in the run's."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_mlflow():
    """MLflow warns about pickle formats and prints progress bars: keep those in the log."""
    import warnings

    logger = logging.getLogger("mlflow")
    old = logger.level
    logger.setLevel(logging.ERROR)
    old_env = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(old)
        if old_env is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = old_env


class _NoServingCheck:
    """A flavor module for ``Model.log`` with MLflow's serving-input check off: that check
    loads the saved model again through pyfunc and predicts on the input example only to
    log a warning on failure (which ``_quiet_mlflow`` hides); ``train`` has already
    predicted with this very model for the signature and the golden samples. The saved
    files are the flavor's own (``flavor.save_model``)."""

    def __init__(self, module) -> None:
        self.module = module
        self.__name__ = module.__name__

    def save_model(self, validate_serving_input: bool = False, **kwargs):
        return self.module.save_model(**kwargs)


def _log(model, saved_dir: Path | None, *, run_id: str, signature, input_example, reqs,
         metadata, code_paths, serialization_format: str, tracker: _Tracker):
    """Log the model as ``model`` in the run: sklearn flavor when it is a scikit-learn
    estimator, else a pyfunc wrapper (pickled by value: serving needs no mlcd-actions)."""
    import cloudpickle
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import Model

    with _quiet_mlflow():
        from mlcd_actions.training import pyfunc as wrappers

    common = {"name": MODEL_NAME, "run_id": run_id, "signature": signature,
              "input_example": input_example, "metadata": metadata}
    if model is not None and _is_sklearn(model):
        return tracker.call("logging the model", lambda: Model.log(
            artifact_path=None, flavor=_NoServingCheck(mlflow.sklearn), sk_model=model,
            validate_serving_input=False,
            serialization_format=serialization_format, pip_requirements=reqs,
            code_paths=code_paths or None, **common))
    cloudpickle.register_pickle_by_value(wrappers)
    try:
        if model is not None:
            python_model = wrappers.PredictWrapper(model)
            kwargs = {"python_model": python_model, "pip_requirements": reqs,
                      "code_paths": code_paths or None}
        else:
            inner = Path(saved_dir) / "requirements.txt"
            inner_reqs = ([ln.strip() for ln in inner.read_text().splitlines()
                           if ln.strip() and not ln.startswith("#")]
                          if inner.is_file() else reqs)
            kwargs = {"python_model": wrappers.SavedModelWrapper(),
                      "artifacts": {"model": str(saved_dir)}, "pip_requirements": inner_reqs}
        return tracker.call("logging the model", lambda: Model.log(
            artifact_path=None, flavor=mlflow.pyfunc, **kwargs, **common))
    finally:
        cloudpickle.unregister_pickle_by_value(wrappers)

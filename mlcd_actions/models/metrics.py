"""Model metrics for ``evaluate`` (and anything else that scores predictions).

Classification (``classification_metrics``):

* ``accuracy``, ``balanced_accuracy``;
* ``precision``, ``recall``, ``f1``: for a binary label, of the positive class (the
  model's last class in sorted order — ``1``, ``True``, ``'yes'`` — or ``pos_label``);
  for more than two classes, the unweighted mean over classes (``average='macro'``),
  so a rare class counts as much as a common one; a class never predicted scores 0;
* ``roc_auc``: binary, of the positive class' probability; multiclass, one-vs-rest
  macro average over the classes present in the test set with both positive and
  negative rows (equal to scikit-learn's ``multi_class='ovr', average='macro'`` when
  every class is present);
* ``log_loss``: over the model's classes.

``roc_auc`` and ``log_loss`` need probabilities; a model without ``predict_proba``
(or a test set whose labels the model does not know) gets None for them.

Regression (``regression_metrics``): ``rmse``, ``mae``, ``r2`` (None when the label is
constant, where R² is undefined).

numpy and scikit-learn are imported inside functions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1",
                          "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def positive_label(classes: Sequence[Any], pos_label: Any = None) -> Any:
    """The positive class of a binary problem: ``pos_label`` matched by value or text,
    else the last class in sorted order."""
    if pos_label is not None:
        for c in classes:
            if c == pos_label or str(c) == str(pos_label):
                return c
        from mlcd_actions.core.errors import ConfigError

        raise ConfigError(f"--pos-label {pos_label!r} is not one of the classes "
                          f"{', '.join(map(str, classes))}")
    return sorted(classes, key=_sort_key)[-1]


def align_labels(y_true: np.ndarray, classes: Sequence[Any] | None) -> np.ndarray:
    """Make the test labels comparable with the model's classes.

    A CSV may hold ``1`` where the model learned ``'1'`` (or the reverse): when every
    label matches a class by its text, the labels are mapped onto the classes.
    """
    import numpy as np

    if not classes:
        return y_true
    known = set(classes)
    try:
        if all(v in known for v in np.unique(y_true)):
            return y_true
    except TypeError:  # mixed, unorderable values
        pass
    by_text = {str(c): c for c in classes}
    texts = np.asarray([str(v) for v in y_true], dtype=object)
    if all(t in by_text for t in set(texts)):
        return np.asarray([by_text[t] for t in texts], dtype=object)
    return y_true


def classification_metrics(y_true, y_pred, proba=None, classes: Sequence[Any] | None = None,
                           pos_label: Any = None) -> dict[str, float | None]:
    """Every classification metric (see the module docstring for the averaging)."""
    import numpy as np
    import sklearn.metrics as skm

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(classes) if classes else _union_labels(y_true, y_pred)
    binary = len(labels) == 2
    out: dict[str, float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = float(skm.accuracy_score(y_true, y_pred))
        out["balanced_accuracy"] = _safe(lambda: skm.balanced_accuracy_score(y_true, y_pred))
        if binary:
            pos = positive_label(labels, pos_label)
            kw: dict[str, Any] = {"average": "binary", "pos_label": pos, "labels": labels}
        else:
            pos = None
            kw = {"average": "macro", "labels": _present_labels(labels, y_true, y_pred)}
        out["precision"] = _safe(lambda: skm.precision_score(y_true, y_pred, zero_division=0,
                                                             **kw))
        out["recall"] = _safe(lambda: skm.recall_score(y_true, y_pred, zero_division=0, **kw))
        out["f1"] = _safe(lambda: skm.f1_score(y_true, y_pred, zero_division=0, **kw))
        out["roc_auc"] = None
        out["log_loss"] = None
        if proba is not None and classes:
            proba = np.asarray(proba, dtype=float)
            known = set(labels)
            if all(v in known for v in _unique(y_true)):
                out["roc_auc"] = _roc_auc(y_true, proba, labels, pos)
                out["log_loss"] = _safe(lambda: skm.log_loss(y_true, proba, labels=labels))
    return out


def _roc_auc(y_true, proba, labels, pos) -> float | None:
    import numpy as np
    import sklearn.metrics as skm

    if pos is not None:
        col = labels.index(pos)
        truth = y_true == pos
        if truth.all() or not truth.any():
            return None
        return _safe(lambda: skm.roc_auc_score(truth, proba[:, col]))
    scores = []
    for i, c in enumerate(labels):
        truth = y_true == c
        if truth.any() and not truth.all():
            scores.append(skm.roc_auc_score(truth, proba[:, i]))
    return float(np.mean(scores)) if scores else None


def regression_metrics(y_true, y_pred) -> dict[str, float | None]:
    import numpy as np
    import sklearn.metrics as skm

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "r2": None,
        }
        if len(y_true) > 1 and np.ptp(y_true) > 0:
            out["r2"] = _safe(lambda: skm.r2_score(y_true, y_pred))
    return out


def compute(task: str, y_true, y_pred, proba=None, classes=None,
            pos_label: Any = None) -> dict[str, float | None]:
    if task == "classification":
        return classification_metrics(y_true, y_pred, proba, classes, pos_label)
    return regression_metrics(y_true, y_pred)


def slice_metrics(task: str, slice_values, y_true, y_pred, proba=None, classes=None,
                  pos_label: Any = None, *, max_values: int = 20) -> tuple[list[dict], int]:
    """Metrics per value of one slice column, largest slices first.

    Returns ``(rows, left_out)``: each row is ``{"value", "rows", **metrics}``; at most
    ``max_values`` slices are computed, ``left_out`` counts the smaller ones skipped.
    Missing slice values form their own slice, ``(missing)``.
    """
    import numpy as np
    import pandas as pd

    s = pd.Series(slice_values).reset_index(drop=True)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    missing = int((codes < 0).sum())
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    # (count, value, code); code -1 is the "(missing)" slice
    entries = [(int(counts[i]), _plain(uniques[i]), i) for i in range(len(uniques))]
    if missing:
        entries.append((missing, "(missing)", -1))
    entries.sort(key=lambda e: (-e[0], str(e[1])))
    left_out = max(0, len(entries) - max_values)
    groups = [(value, codes == code) for _, value, code in entries[:max_values]]
    rows = []
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for value, mask in groups[:max_values]:
        m = compute(task, y_true[mask], y_pred[mask],
                    None if proba is None else np.asarray(proba)[mask], classes, pos_label)
        rows.append({"value": value, "rows": int(mask.sum()), **m})
    return rows, left_out


def _safe(fn) -> float | None:
    try:
        value = float(fn())
    except (ValueError, ZeroDivisionError, IndexError):
        return None
    return None if math.isnan(value) else value


def _unique(values) -> list:
    import pandas as pd

    return list(pd.unique(pd.Series(values)))


def _union_labels(y_true, y_pred) -> list:
    values = set(_unique(y_true)) | set(_unique(y_pred))
    return sorted(values, key=_sort_key)


def _present_labels(labels, y_true, y_pred) -> list:
    present = set(_unique(y_true)) | set(_unique(y_pred))
    return [c for c in labels if c in present]


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float, bool)) else (1, 0, str(value))


def _plain(value):
    return value.item() if hasattr(value, "item") else value

"""Group fairness metrics, vectorised: the numbers of fairlearn's ``MetricFrame``, fast.

For one sensitive feature, every row gets an integer group code (``pandas.factorize``)
and every per-group count is one ``numpy.bincount``. The results are the same floats
fairlearn computes (``fairlearn.metrics.MetricFrame`` with ``accuracy_score``,
``selection_rate``, ``true_positive_rate``, ``false_positive_rate``, and
``demographic_parity_difference``/``_ratio``, ``equalized_odds_difference``/``_ratio``
with their defaults ``method='between_groups'``, ``agg='worst_case'``), including its
edge cases: a rate whose denominator is zero (a group with no positive, or no
negative, label) is 0, as scikit-learn's ``confusion_matrix(normalize='true')`` makes
it; a ratio of 0 to 0 is NaN (reported as None). ``tests/models/test_fairness.py`` checks
the equality, ``benchmarks/bench_fairness.py`` the speed.

Classification, per group: ``count``, ``positives`` (label rows equal to the positive
label), ``accuracy``, ``selection_rate`` (share predicted positive), ``tpr``, ``fpr``.
Summary: ``demographic_parity_difference`` (max − min selection rate),
``demographic_parity_ratio`` (min / max), ``equalized_odds_difference`` (the larger of
the TPR and FPR differences), ``equalized_odds_ratio`` (the smaller of the TPR and FPR
ratios), ``equal_opportunity_difference``/``_ratio`` (TPR only), and
``accuracy_difference``/``_ratio``, ``fpr_difference``/``_ratio``.

Regression, per group: ``count``, ``mae``, ``rmse``, ``mean_prediction``,
``mean_label``; summary ``mae_difference``/``_ratio``, ``rmse_difference``/``_ratio``.

Two deliberate differences from fairlearn, both documented in
``docs/stages/check-fairness.md``: a missing sensitive value is its own group,
``(missing)`` (fairlearn's grouping drops those rows); and groups smaller than
``min_group_size`` are reported but left out of the summary differences and ratios
(with the default ``min_group_size=1`` every group counts, as in fairlearn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MISSING_GROUP = "(missing)"

CLASSIFICATION_GROUP_METRICS = ("accuracy", "selection_rate", "tpr", "fpr")
REGRESSION_GROUP_METRICS = ("mae", "rmse", "mean_prediction", "mean_label")

CLASSIFICATION_SUMMARY = (
    "demographic_parity_difference", "demographic_parity_ratio",
    "equalized_odds_difference", "equalized_odds_ratio",
    "equal_opportunity_difference", "equal_opportunity_ratio",
    "accuracy_difference", "accuracy_ratio", "fpr_difference", "fpr_ratio",
)
REGRESSION_SUMMARY = ("mae_difference", "mae_ratio", "rmse_difference", "rmse_ratio")


def summary_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_SUMMARY if task == "classification" else REGRESSION_SUMMARY


def group_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_GROUP_METRICS if task == "classification" else REGRESSION_GROUP_METRICS


@dataclass
class FeatureFairness:
    """Fairness of one sensitive feature.

    ``groups``: one dict per group, sorted by group value (``group``, ``count``,
    ``gated``, then the per-group metrics); ``summary``: differences and ratios over
    the gated groups (None where undefined); ``excluded``: groups below the minimum
    size (reported, not gated).
    """

    feature: str
    task: str
    groups: list[dict[str, Any]]
    summary: dict[str, float | None]
    min_group_size: int = 1
    excluded: list[Any] = field(default_factory=list)

    @property
    def gated_groups(self) -> int:
        return sum(1 for g in self.groups if g["gated"])


def encode_groups(values) -> tuple[np.ndarray, list[Any]]:
    """``(codes, groups)``: an int code per row and the group values, sorted.

    Missing values form the group ``(missing)``, listed last.
    """
    import numpy as np
    import pandas as pd

    s = pd.Series(values).reset_index(drop=True)
    codes, uniques = pd.factorize(s, sort=True, use_na_sentinel=True)
    groups = [_plain(u) for u in uniques]
    codes = np.asarray(codes, dtype=np.intp)
    missing = codes < 0
    if missing.any():
        codes = codes.copy()
        codes[missing] = len(groups)
        groups.append(MISSING_GROUP)
    return codes, groups


def classification_by_group(codes: np.ndarray, n_groups: int, y_true_pos: np.ndarray,
                            y_pred_pos: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """Per-group counts and rates from boolean arrays (all of one length).

    ``y_true_pos``/``y_pred_pos``: label / prediction equal to the positive label;
    ``correct``: label equal to prediction (on the original labels).
    """
    import numpy as np

    count = np.bincount(codes, minlength=n_groups)
    selected = np.bincount(codes, weights=y_pred_pos, minlength=n_groups)
    positives = np.bincount(codes, weights=y_true_pos, minlength=n_groups)
    tp = np.bincount(codes, weights=y_true_pos & y_pred_pos, minlength=n_groups)
    fp = np.bincount(codes, weights=~y_true_pos & y_pred_pos, minlength=n_groups)
    right = np.bincount(codes, weights=correct, minlength=n_groups)
    negatives = count - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        # the same divisions fairlearn/scikit-learn make; 0/0 -> 0 like
        # confusion_matrix(normalize="true") does with np.nan_to_num
        tpr = np.nan_to_num(tp / positives)
        fpr = np.nan_to_num(fp / negatives)
        return {
            "count": count,
            "positives": positives.astype(np.int64),
            "accuracy": right / count,
            "selection_rate": selected / count,
            "tpr": tpr,
            "fpr": fpr,
        }


def regression_by_group(codes: np.ndarray, n_groups: int, y_true: np.ndarray,
                        y_pred: np.ndarray) -> dict[str, Any]:
    import numpy as np

    err = y_pred - y_true
    count = np.bincount(codes, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "count": count,
            "mae": np.bincount(codes, weights=np.abs(err), minlength=n_groups) / count,
            "rmse": np.sqrt(np.bincount(codes, weights=err * err, minlength=n_groups) / count),
            "mean_prediction": np.bincount(codes, weights=y_pred, minlength=n_groups) / count,
            "mean_label": np.bincount(codes, weights=y_true, minlength=n_groups) / count,
        }


def difference(values: np.ndarray) -> float | None:
    """max − min (fairlearn ``MetricFrame.difference(method='between_groups')``)."""
    import numpy as np

    v = values[~np.isnan(values)]
    if len(v) == 0:
        return None
    return _num(v.max() - v.min())


def ratio(values: np.ndarray) -> float | None:
    """min / max (fairlearn ``MetricFrame.ratio(method='between_groups')``); 0/0 -> None."""
    import numpy as np

    v = values[~np.isnan(values)]
    if len(v) == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return _num(np.float64(v.min()) / np.float64(v.max()))


def assess(task: str, sensitive, y_true, y_pred, *, feature: str, pos_label: Any = None,
           min_group_size: int = 1) -> FeatureFairness:
    """Per-group metrics and summary for one sensitive feature.

    Classification needs ``pos_label`` (the favourable outcome); labels and predictions
    are compared with it, so a multiclass problem is assessed one-vs-rest.
    """
    import numpy as np

    codes, groups = encode_groups(sensitive)
    n = len(groups)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if task == "classification":
        per = classification_by_group(codes, n, y_true == pos_label, y_pred == pos_label,
                                      y_true == y_pred)
        metric_names = CLASSIFICATION_GROUP_METRICS
    else:
        per = regression_by_group(codes, n, y_true.astype(float), y_pred.astype(float))
        metric_names = REGRESSION_GROUP_METRICS
    gated = per["count"] >= max(1, int(min_group_size))
    rows = []
    for i, g in enumerate(groups):
        row: dict[str, Any] = {"group": g, "count": int(per["count"][i]), "gated": bool(gated[i])}
        if "positives" in per:
            row["positives"] = int(per["positives"][i])
        for m in metric_names:
            row[m] = _num(per[m][i])
        rows.append(row)
    summary = summarize(task, per, gated)
    return FeatureFairness(feature, task, rows, summary, int(min_group_size),
                           [g for g, ok in zip(groups, gated, strict=True) if not ok])


def summarize(task: str, per: dict[str, Any], gated: np.ndarray) -> dict[str, float | None]:
    """Differences and ratios over the gated groups (None with fewer than two)."""
    names = summary_names(task)
    if int(gated.sum()) < 2:
        return dict.fromkeys(names)
    sub = {k: v[gated] for k, v in per.items()}
    out: dict[str, float | None] = {}
    if task == "classification":
        sel_d, sel_r = difference(sub["selection_rate"]), ratio(sub["selection_rate"])
        tpr_d, tpr_r = difference(sub["tpr"]), ratio(sub["tpr"])
        fpr_d, fpr_r = difference(sub["fpr"]), ratio(sub["fpr"])
        out["demographic_parity_difference"] = sel_d
        out["demographic_parity_ratio"] = sel_r
        # fairlearn: max()/min() over the Series [tpr, fpr] (NaN-propagating the same way)
        out["equalized_odds_difference"] = _worst(max, tpr_d, fpr_d)
        out["equalized_odds_ratio"] = _worst(min, tpr_r, fpr_r)
        out["equal_opportunity_difference"] = tpr_d
        out["equal_opportunity_ratio"] = tpr_r
        out["accuracy_difference"] = difference(sub["accuracy"])
        out["accuracy_ratio"] = ratio(sub["accuracy"])
        out["fpr_difference"] = fpr_d
        out["fpr_ratio"] = fpr_r
    else:
        for m in ("mae", "rmse"):
            out[f"{m}_difference"] = difference(sub[m])
            out[f"{m}_ratio"] = ratio(sub[m])
    return out


def _worst(fn, a: float | None, b: float | None) -> float | None:
    nan = float("nan")
    value = fn([nan if a is None else a, nan if b is None else b])
    return _num(value)


def _num(value) -> float | None:
    import math

    v = float(value)
    return None if math.isnan(v) else v


def _plain(value):
    return value.item() if hasattr(value, "item") else value

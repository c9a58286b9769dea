"""mlcd_actions.models.fairness gives fairlearn's numbers exactly (same floats), edge cases included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error

from mlcd_actions.models import fairness


def _same(ours, theirs) -> bool:
    """Identical floats; fairlearn's NaN (undefined) is our None."""
    theirs = float(theirs)
    if math.isnan(theirs):
        return ours is None
    return ours == theirs


def _check_against_fairlearn(y_true, y_pred, sensitive, pos_label=1):
    ff = fairness.assess("classification", sensitive, y_true, y_pred, feature="s",
                         pos_label=pos_label)
    fns = {
        "accuracy": accuracy_score,
        "selection_rate": lambda t, p: selection_rate(t, p, pos_label=pos_label),
        "tpr": lambda t, p: true_positive_rate(t, p, pos_label=pos_label),
        "fpr": lambda t, p: false_positive_rate(t, p, pos_label=pos_label),
    }
    mf = MetricFrame(metrics=fns, y_true=y_true, y_pred=y_pred, sensitive_features=sensitive)
    by_group = mf.by_group
    assert [g["group"] for g in ff.groups] == list(by_group.index)
    for metric in fns:
        ours = [g[metric] for g in ff.groups]
        assert ours == list(by_group[metric]), metric
    counts = pd.Series(sensitive).value_counts()
    assert [g["count"] for g in ff.groups] == [int(counts[g["group"]]) for g in ff.groups]
    yt = (np.asarray(y_true) == pos_label).astype(int)
    yp = (np.asarray(y_pred) == pos_label).astype(int)
    s = ff.summary
    assert _same(s["demographic_parity_difference"],
                 demographic_parity_difference(yt, yp, sensitive_features=sensitive))
    assert _same(s["demographic_parity_ratio"],
                 demographic_parity_ratio(yt, yp, sensitive_features=sensitive))
    assert _same(s["equalized_odds_difference"],
                 equalized_odds_difference(yt, yp, sensitive_features=sensitive))
    assert _same(s["equalized_odds_ratio"],
                 equalized_odds_ratio(yt, yp, sensitive_features=sensitive))
    diff, ratio = mf.difference(), mf.ratio()
    assert _same(s["equal_opportunity_difference"], diff["tpr"])
    assert _same(s["equal_opportunity_ratio"], ratio["tpr"])
    assert _same(s["accuracy_difference"], diff["accuracy"])
    assert _same(s["accuracy_ratio"], ratio["accuracy"])
    assert _same(s["fpr_difference"], diff["fpr"])
    assert _same(s["fpr_ratio"], ratio["fpr"])
    return ff


@pytest.mark.parametrize("seed,n,k", [(0, 40, 2), (1, 300, 5), (2, 1000, 12)])
def test_random_data_matches_fairlearn(seed, n, k):
    rng = np.random.default_rng(seed)
    sensitive = rng.choice([f"g{i}" for i in range(k)], n)
    y_true = rng.integers(0, 2, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, 1 - y_true)
    _check_against_fairlearn(y_true, y_pred, sensitive)


def test_group_without_positive_labels_and_without_negatives():
    sensitive = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 3)
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1])  # a: no positives, b: no negatives
    y_pred = np.array([1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0])
    ff = _check_against_fairlearn(y_true, y_pred, sensitive)
    a, b = ff.groups[0], ff.groups[1]
    assert a["tpr"] == 0.0 and a["positives"] == 0
    assert b["fpr"] == 0.0


def test_nobody_selected_gives_undefined_ratio_like_fairlearn():
    sensitive = np.array(["x", "x", "y", "y"])
    y_true = np.array([0, 1, 0, 1])
    y_pred = np.zeros(4, dtype=int)
    ff = _check_against_fairlearn(y_true, y_pred, sensitive)
    assert ff.summary["demographic_parity_difference"] == 0.0
    assert ff.summary["demographic_parity_ratio"] is None  # 0/0, fairlearn's NaN


def test_single_row_groups_and_one_group_only():
    _check_against_fairlearn(np.array([1, 0, 1]), np.array([1, 1, 0]), np.array(["p", "q", "r"]))
    ff = fairness.assess("classification", ["only"] * 3, [0, 1, 1], [0, 1, 0], feature="s",
                         pos_label=1)
    assert ff.gated_groups == 1
    assert all(v is None for v in ff.summary.values())


def test_string_labels_with_positive_label():
    rng = np.random.default_rng(5)
    n = 200
    sensitive = rng.choice(["north", "south", "east"], n)
    y_true = rng.choice(["no", "yes"], n)
    y_pred = rng.choice(["no", "yes"], n)
    _check_against_fairlearn(y_true, y_pred, sensitive, pos_label="yes")


def test_integer_and_categorical_sensitive_values():
    rng = np.random.default_rng(9)
    n = 150
    y_true = rng.integers(0, 2, n)
    y_pred = rng.integers(0, 2, n)
    _check_against_fairlearn(y_true, y_pred, rng.integers(18, 22, n))
    cat = pd.Categorical(rng.choice(["lo", "hi"], n), categories=["lo", "hi"])
    ff = fairness.assess("classification", cat, y_true, y_pred, feature="s", pos_label=1)
    assert sorted(g["group"] for g in ff.groups) == ["hi", "lo"]


def test_min_group_size_reports_but_does_not_gate():
    sensitive = np.array(["big"] * 10 + ["big2"] * 10 + ["tiny"] * 2)
    y_true = np.array([1, 0] * 11)
    y_pred = np.array([1, 0] * 10 + [1, 1])  # tiny: selection rate 1.0
    everyone = fairness.assess("classification", sensitive, y_true, y_pred, feature="s",
                               pos_label=1)
    gated = fairness.assess("classification", sensitive, y_true, y_pred, feature="s",
                            pos_label=1, min_group_size=5)
    assert everyone.summary["demographic_parity_difference"] == 0.5
    assert gated.summary["demographic_parity_difference"] == 0.0
    assert gated.excluded == ["tiny"]
    tiny = [g for g in gated.groups if g["group"] == "tiny"][0]
    assert tiny["gated"] is False and tiny["selection_rate"] == 1.0


def test_missing_sensitive_value_is_its_own_group():
    ff = fairness.assess("classification", pd.Series(["a", None, "a", None]), [1, 0, 1, 1],
                         [1, 1, 1, 0], feature="s", pos_label=1)
    assert [g["group"] for g in ff.groups] == ["a", fairness.MISSING_GROUP]
    assert ff.groups[1]["count"] == 2


def test_regression_groups_match_sklearn():
    rng = np.random.default_rng(3)
    n = 500
    sensitive = rng.choice(["a", "b", "c"], n)
    y_true = rng.normal(10, 3, n)
    y_pred = y_true + rng.normal(0, 1, n) + (sensitive == "c") * 2
    ff = fairness.assess("regression", sensitive, y_true, y_pred, feature="s")
    mf = MetricFrame(metrics={"mae": mean_absolute_error,
                              "rmse": lambda t, p: math.sqrt(mean_squared_error(t, p))},
                     y_true=y_true, y_pred=y_pred, sensitive_features=sensitive)
    for g, (_, ref) in zip(ff.groups, mf.by_group.iterrows(), strict=True):
        assert g["mae"] == pytest.approx(ref["mae"], rel=1e-12)
        assert g["rmse"] == pytest.approx(ref["rmse"], rel=1e-12)
    assert ff.summary["mae_difference"] == pytest.approx(mf.difference()["mae"], rel=1e-9)
    assert ff.summary["rmse_ratio"] == pytest.approx(mf.ratio()["rmse"], rel=1e-12)
    assert ff.summary["mae_difference"] > 1.0  # group c is off by 2

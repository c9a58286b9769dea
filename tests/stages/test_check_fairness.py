"""mlcd_actions.stages.check_fairness.run: numbers, multiclass, threshold parsing."""

from __future__ import annotations

import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_ratio

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.models import loading as models
from mlcd_actions.stages import check_fairness
from tests.models.test_loading import DATA, LABEL
from tests.models.test_loading import eval_store as eval_store  # noqa: F401 - shared fixture
from tests.models.test_loading import store as shared_store
from tests.stages.test_evaluate import multiclass_model as multiclass_model  # noqa: F401

TEST = DATA / "test.csv"
store = shared_store  # the fixture, under its own name


def test_numbers_match_fairlearn_on_the_models_predictions(store, tmp_path):
    res = check_fairness.run("models:/credit/1", TEST, LABEL, ["sex", "age_band"],
                             thresholds=["equalized_odds_ratio>=0"], report_dir=tmp_path)
    df = pd.read_csv(TEST)
    m = models.load("models:/credit/1")
    pred = m.predict(models.prepare_features(df, LABEL, m))
    for feature in ("sex", "age_band"):
        assert res.metrics[f"{feature}:demographic_parity_difference"] == \
            demographic_parity_difference(df[LABEL], pred, sensitive_features=df[feature])
        assert res.metrics[f"{feature}:equalized_odds_ratio"] == \
            equalized_odds_ratio(df[LABEL], pred, sensitive_features=df[feature])
    assert res.status == "passed" and len(res.gates) == 2
    worst = max(res.metrics[f"{f}:demographic_parity_difference"] for f in ("sex", "age_band"))
    assert res.outputs["demographic-parity-difference"] == worst
    assert [t.title for t in res.tables] == ["fairness summary (over gated groups)",
                                             "groups by sex", "groups by age_band"]


def test_multiclass_needs_a_positive_label(multiclass_model, tmp_path):
    path, test, _ = multiclass_model
    df = pd.read_csv(test).assign(group=lambda d: (d.f1 > 0).map({True: "p", False: "q"}))
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ConfigError, match="3 classes; pass --pos-label"):
        check_fairness.run(str(path), tmp_path / "t.csv", "kind", ["group"],
                           report_dir=tmp_path)
    res = check_fairness.run(str(path), tmp_path / "t.csv", "kind", ["group"],
                             pos_label="high", thresholds=["demographic_parity_difference<=1"],
                             report_dir=tmp_path, plot=False)
    assert res.details["pos_label"] == "high" and res.status == "passed"


def test_parse_scoped():
    parsed = check_fairness.parse_scoped(
        ["sex:demographic_parity_difference<=0.1", "equalized_odds_ratio >= 0.8"],
        "classification", ["sex", "race"])
    assert [(s, m, t.op, t.value) for s, m, t in parsed] == [
        ("sex", "demographic_parity_difference", "<=", 0.1),
        (None, "equalized_odds_ratio", ">=", 0.8)]
    with pytest.raises(ConfigError, match="unknown fairness metric 'accuracy'"):
        check_fairness.parse_scoped(["accuracy>=0.5"], "classification", ["sex"])
    with pytest.raises(ConfigError, match="mae_difference"):
        check_fairness.parse_scoped(["demographic_parity_difference<=0.1"], "regression",
                                    ["sex"])


def test_single_group_fails_a_configured_gate_unless_allowed(store, tmp_path):
    pd.read_csv(TEST).assign(sex="M").to_csv(tmp_path / "one.csv", index=False)
    args = ("models:/credit/1", tmp_path / "one.csv", LABEL, ["sex"])
    res = check_fairness.run(*args, thresholds=["demographic_parity_difference<=0.1"],
                             report_dir=tmp_path, plot=False)
    assert res.status == "failed" and res.gates[0].verdict == "failed"
    assert res.reason == ("sex: only 1 group in the test set; demographic parity cannot be "
                          "checked")
    assert res.outputs["passed"] is False
    allowed = check_fairness.run(*args, thresholds=["demographic_parity_difference<=0.1"],
                                 report_dir=tmp_path, plot=False, allow_skipped_gates=True)
    assert allowed.status == "passed" and allowed.gates[0].verdict == "skipped"
    assert allowed.reason.startswith("no gate checked (1 skipped)")


def test_a_constant_model_is_not_shown_fair(store, tmp_path):
    # everyone refused: the parity difference is 0, which says nothing about fairness
    df = pd.read_csv(TEST).assign(income=0.0, debt=100.0)
    df.to_csv(tmp_path / "none.csv", index=False)
    args = ("models:/credit/1", tmp_path / "none.csv", LABEL, ["sex"])
    kw = {"thresholds": ["demographic_parity_difference<=0.1"], "report_dir": tmp_path,
          "plot": False}
    res = check_fairness.run(*args, **kw)
    assert res.metrics["sex:demographic_parity_difference"] == 0
    assert res.status == "failed" and res.gates[0].verdict == "failed"
    assert "for every row: a constant model is trivially equal across groups" in res.reason
    res = check_fairness.run(*args, **kw, allow_skipped_gates=True)
    assert res.status == "passed" and res.gates[0].verdict == "skipped"


def test_ratio_of_zero_to_zero_cannot_be_checked(store, tmp_path):
    # everyone refused: selection rate 0 in both groups, so the ratio is 0/0
    df = pd.read_csv(TEST).assign(income=0.0, debt=100.0)
    df.to_csv(tmp_path / "none.csv", index=False)
    res = check_fairness.run("models:/credit/1", tmp_path / "none.csv", LABEL, ["sex"],
                             thresholds=["demographic_parity_ratio>=0.8"], report_dir=tmp_path,
                             plot=False)
    assert res.metrics["sex:demographic_parity_ratio"] is None
    assert res.status == "failed"
    assert res.reason == ("sex: demographic_parity_ratio is a ratio of 0 to 0 (the rate is 0 in "
                          "every gated group); demographic parity cannot be checked")

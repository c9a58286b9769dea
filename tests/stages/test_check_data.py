"""check-data library: bias metrics and gates, policy gates, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.stages import check_data
from tests.conftest import DATA

PEOPLE = str(DATA / "check_data" / "people.csv")
CLEAN = str(DATA / "check_data" / "clean.csv")
POLICY = str(DATA / "check_data" / "policy.yaml")


def _gate(result, metric):
    return next(g for g in result.gates if g.metric == metric)


def test_bias_metrics_per_feature_and_worst():
    r = check_data.run(CLEAN, label="label", sensitive=["group"],
                       thresholds=["label_rate_gap<=0.5"], min_group_size=3)
    # group a: labels 1,0,1 -> 2/3 ; group b: 1,0,0 -> 1/3
    assert r.metrics["group:label_rate_gap"] == pytest.approx(1 / 3)
    assert r.metrics["label_rate_ratio"] == pytest.approx(0.5)
    assert r.metrics["min_group_size"] == 3
    assert r.status == "passed", r.reason
    assert [g.verdict for g in r.gates] == ["passed", "passed"]
    table = r.tables[-1]
    assert table.title == "groups of group" and table.rows[0][:2] == ["a", 3]


def test_bias_threshold_missed_fails_with_explained_gate():
    r = check_data.run(CLEAN, label="label", sensitive=["group"],
                       thresholds=["group:label_rate_gap<=0.1"], scan_pii=False)
    assert r.status == "failed"
    g = _gate(r, "group:label_rate_gap")
    assert g.verdict == "failed" and g.threshold == "<= 0.1"
    assert "misses" in r.reason and r.code() == 1


def test_min_group_size_gate_fails_on_small_groups():
    r = check_data.run(CLEAN, label="label", sensitive=["group"], min_group_size=30,
                       scan_pii=False)
    assert r.status == "failed" and _gate(r, "min_group_size").value == 3
    # the failing row names the feature and the group, not only the number
    assert "(feature 'group', group " in r.reason and "has 3 rows)" in r.reason


def test_numeric_sensitive_feature_is_binned_and_multiclass_label_supported():
    df = pd.DataFrame({"age": np.arange(40), "y": ["a", "b", "c", "a"] * 10})
    df.to_csv("d.csv", index=False)
    r = check_data.run("d.csv", label="y", sensitive=["age"], scan_pii=False)
    table = next(t for t in r.tables if t.title == "groups of age")
    assert len(table.rows) == 4 and "quartiles" in table.note
    assert "label rates" in table.columns and r.metrics["age:label_rate_gap"] >= 0


def test_regression_label_gives_mean_gap():
    df = pd.DataFrame({"g": ["a", "b"] * 20, "y": np.linspace(0.1, 9.9, 40)})
    df.to_csv("d.csv", index=False)
    r = check_data.run("d.csv", label="y", sensitive=["g"], thresholds=["label_mean_gap<=1"],
                       scan_pii=False)
    assert r.metrics["g:label_mean_gap"] == pytest.approx(0.2513, abs=1e-3)
    assert r.status == "passed"


def test_missing_sensitive_values_form_their_own_group():
    df = pd.DataFrame({"g": ["a", None, "a", None], "y": [1, 0, 1, 1]})
    df.to_csv("d.csv", index=False)
    r = check_data.run("d.csv", label="y", sensitive=["g"], scan_pii=False)
    groups = [row[0] for row in r.tables[-1].rows]
    assert groups == ["(missing)", "a"]


def test_policy_and_rule_set_gates():
    r = check_data.run(PEOPLE, pii_policy=POLICY)
    assert r.status == "failed"
    assert _gate(r, "email_sha:unhashed_values").verdict == "passed"
    assert _gate(r, "notes:forbidden_pii").value == 3          # phone, ssn, iban
    assert _gate(r, "pci:credit_card").value == 2
    assert r.outputs["violations"] == 2
    kinds = {(f.column, f.code): f.severity for f in r.findings}
    assert kinds[("email", "pii.email")] == "notice"           # allowed by the policy
    assert kinds[("card", "pii.credit_card")] == "error"


def test_must_be_hashed_catches_raw_values(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text("columns:\n  email: must-be-hashed\n")
    r = check_data.run(PEOPLE, pii_policy=str(pol))
    g = _gate(r, "email:unhashed_values")
    assert g.verdict == "failed" and g.value == 6
    f = next(f for f in r.findings if f.code == "pii.unhashed")
    assert "j***@e***.com" in f.message and "john" not in f.message


def test_no_gate_configured_says_so_and_passes():
    r = check_data.run(PEOPLE)
    assert r.status == "passed" and "no gate configured" in r.reason
    assert any("no gate configured" in w for w in r.warnings)
    assert r.outputs["pii-findings"] == 5    # email, card; phone, ssn, iban in notes


def test_findings_are_masked_everywhere_in_the_result():
    r = check_data.run(PEOPLE, rules=["gdpr"], label="approved", sensitive=["sex"])
    text = json.dumps({"f": [f.to_dict() for f in r.findings],
                       "t": [t.to_dict() for t in r.tables], "d": r.details,
                       "reason": r.reason}, default=str)
    for raw in ("john.doe", "jane.roe@corp.io", "4111111111111111", "123-45-6789",
                "555-201-4567", "DE89 3704", "5500000000000004"):
        assert raw not in text


@pytest.mark.parametrize("kwargs,error,message", [
    ({"sensitive": ["race"]}, DataError, "sensitive feature 'race' not found"),
    ({"label": "nope"}, DataError, "label column 'nope' not found"),
    ({"rules": ["sox"]}, ConfigError, "unknown rule set"),
    ({"thresholds": ["label_rate_gap<=0.1"]}, ConfigError, "need at least one --sensitive"),
    ({"sensitive": ["sex"], "thresholds": ["label_rate_gap<=0.1"]}, ConfigError,
     "unknown metric 'label_rate_gap'"),
    ({"sensitive": ["sex"], "thresholds": ["gap<"]}, ConfigError, "is not of the form"),
    ({"sensitive": ["sex"], "min_group_size": 0}, ConfigError, "must be at least 1"),
])
def test_bad_options(kwargs, error, message):
    with pytest.raises(error) as exc:
        check_data.run(PEOPLE, **kwargs)
    assert message in exc.value.one_line()


def test_policy_naming_a_column_that_is_gone_is_noted_not_fatal(tmp_path):
    # the user dropped the column (or mistyped it): a warning finding naming it, no exit 2
    pol = tmp_path / "p.yaml"
    pol.write_text("columns:\n  emial: forbid\n")
    result = check_data.run(PEOPLE, pii_policy=str(pol))
    (absent,) = [f for f in result.findings if f.code == "pii.policy-column-absent"]
    assert absent.column == "emial" and absent.severity == "warning"
    assert "p.yaml:2: policy column 'emial' is not in" in absent.message


def test_empty_dataset_and_all_null_columns(tmp_path):
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="dataset is empty"):
        check_data.run(str(tmp_path / "empty.csv"))
    df = pd.DataFrame({"g": [None, None, None], "y": [None, None, None],
                       "t": [None, None, None], "x": [np.nan, np.inf, -np.inf]})
    df.to_csv("nulls.csv", index=False)
    r = check_data.run("nulls.csv", label="y", sensitive=["g"], rules=["gdpr"])
    assert r.status == "passed" and r.metrics["g:groups"] == 1
    assert any("single group" in w for w in r.warnings)


def test_one_class_label_and_nan_inf_label():
    df = pd.DataFrame({"g": ["a", "b", "a", "b"], "y": [1, 1, 1, 1],
                       "z": [1.0, np.nan, np.inf, 0.0]})
    df.to_csv("d.csv", index=False)
    r = check_data.run("d.csv", label="y", sensitive=["g"], thresholds=["label_rate_gap<=0.1"])
    assert r.metrics["label_rate_gap"] == 0.0 and r.status == "passed"
    r = check_data.run("d.csv", label="z", sensitive=["g"], scan_pii=False)
    assert "g:label_rate_gap" in r.metrics


def test_positive_label_chooses_the_rate_compared():
    r = check_data.run(CLEAN, label="label", sensitive=["group"], positive_label="0",
                       scan_pii=False)
    assert "rate of label=0" in r.tables[-1].columns
    with pytest.raises(DataError, match="--pos-label 'maybe' is not a label value"):
        check_data.run(CLEAN, label="label", sensitive=["group"], positive_label="maybe",
                       scan_pii=False)


def test_group_labels_holding_pii_are_masked():
    r = check_data.run(PEOPLE, sensitive=["email"], scan_pii=False)
    groups = [row[0] for row in r.tables[-1].rows]
    assert "j***@e***.com" in groups and not any("john" in g for g in groups)

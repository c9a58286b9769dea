import math

import pytest

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.gates import (
    FAILED,
    PASSED,
    SKIPPED,
    MaxDrop,
    Threshold,
    direction_of,
    evaluate_gates,
)


@pytest.mark.parametrize("spec,metric,op,value", [
    ("f1>=0.8", "f1", ">=", 0.8),
    (" accuracy > .5 ", "accuracy", ">", 0.5),
    ("age.psi<=0.2", "age.psi", "<=", 0.2),
    ("sex:demographic_parity_difference<=1e-1", "sex:demographic_parity_difference", "<=", 0.1),
    ("rmse<3", "rmse", "<", 3.0),
])
def test_threshold_parse(spec, metric, op, value):
    t = Threshold.parse(spec)
    assert (t.metric, t.op, t.value) == (metric, op, value)


@pytest.mark.parametrize("spec", ["f1", "f1>=", ">=0.8", "f1=>0.8", "f1>=abc"])
def test_threshold_parse_rejects(spec):
    with pytest.raises(ConfigError, match="--threshold"):
        Threshold.parse(spec)


def test_threshold_check_explains_itself():
    row = Threshold.parse("f1>=0.8").check(0.75, baseline=0.82)
    assert row.verdict == FAILED
    assert row.threshold == ">= 0.8"
    assert row.direction == "higher"
    assert row.delta == pytest.approx(-0.07)
    assert "misses" in row.message and "f1" in row.message
    assert Threshold.parse("f1>=0.8").check(0.8).verdict == PASSED
    assert Threshold.parse("f1>=0.8").check(math.nan).verdict == SKIPPED


def test_max_drop_directions():
    higher = MaxDrop.parse("accuracy=0.01")
    assert higher.check(0.895, 0.9).verdict == PASSED
    assert higher.check(0.88, 0.9).verdict == FAILED
    assert higher.check(0.95, 0.9).verdict == PASSED
    lower = MaxDrop.parse("rmse=0.5")
    assert lower.check(10.4, 10.0).verdict == PASSED
    assert lower.check(10.6, 10.0).verdict == FAILED
    rel = MaxDrop.parse("f1=2%")
    assert rel.relative
    assert rel.check(0.99, 1.0).verdict == PASSED
    assert rel.check(0.97, 1.0).verdict == FAILED
    assert higher.check(0.9, None).verdict == SKIPPED


def test_max_drop_unknown_direction_is_config_error():
    with pytest.raises(ConfigError, match="no known direction"):
        MaxDrop.parse("weird=0.1")


def test_direction_of():
    assert direction_of("accuracy") == "higher"
    assert direction_of("sex:equalized_odds_difference") == "lower"
    assert direction_of("age.psi") == "lower"
    assert direction_of("mystery") is None


def test_evaluate_gates_unknown_metric_is_config_error():
    with pytest.raises(ConfigError, match="unknown metric 'f2'"):
        evaluate_gates({"f1": 0.9}, [Threshold.parse("f2>=0.5")])
    rows = evaluate_gates({"f1": 0.9}, [Threshold.parse("f1>=0.5")],
                          [MaxDrop.parse("f1=0.01")], baseline={"f1": 0.95})
    assert [r.verdict for r in rows] == [PASSED, FAILED]

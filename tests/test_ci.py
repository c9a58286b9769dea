import xml.etree.ElementTree as ET

from mlcd_actions import ci, secrets
from mlcd_actions.gates import Threshold
from mlcd_actions.results import Finding, StageResult


def result():
    r = StageResult("evaluate", outputs={"model-uri": "runs:/abc/model", "passed": False,
                                         "notes": "a\nb"})
    r.gates = [Threshold.parse("f1>=0.8").check(0.7), Threshold.parse("accuracy>=0.5").check(0.9)]
    r.fail_unless_gates_pass()
    r.findings.append(Finding("bad value, 100%", file="schema.yaml", line=12, title="x: y"))
    return r


def test_github_outputs_summary_annotations(tmp_path):
    out, summary = tmp_path / "out", tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary)}
    lines = []
    ci.emit(result(), tmp_path / "reports", env=env, echo=lines.append)
    text = out.read_text()
    assert "model-uri=runs:/abc/model\n" in text
    assert "passed=false\n" in text
    assert "status=failed\n" in text
    assert "notes<<ghadelimiter_" in text
    assert lines[0] == "::error file=schema.yaml,line=12,title=x%3A y::bad value, 100%25"
    assert "| f1 | 0.7 | >= 0.8 |" in summary.read_text()


def test_gitlab_dotenv_and_junit(tmp_path):
    env = {"GITLAB_CI": "true"}
    ci.emit(result(), tmp_path, env=env, echo=lambda s: None)
    dotenv = (tmp_path / "evaluate.env").read_text()
    assert "MLCD_MODEL_URI=runs:/abc/model\n" in dotenv
    assert "MLCD_EVALUATE_STATUS=failed\n" in dotenv
    suite = ET.parse(tmp_path / "evaluate.junit.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c for c in suite if c.find("failure") is not None]
    assert failed[0].get("name") == "f1 >= 0.8"
    # passed cases carry their value too
    passed = next(c for c in suite if c.get("name") == "accuracy >= 0.5")
    assert passed.find("failure") is None
    assert passed.find("system-out").text.startswith("passed: accuracy = 0.9 (threshold >= 0.5")
    metrics = (tmp_path / "evaluate.metrics.txt").read_text().splitlines()
    assert metrics == ["evaluate_passed 0"]  # no numeric metrics in this result


def test_junit_names_every_gate_uniquely_and_metrics_report(tmp_path):
    """The threshold and the max-drop gate of one metric are two distinct cases; a gate
    given twice gets a suffix; the metrics report has one line per numeric metric."""
    from mlcd_actions.gates import MaxDrop

    r = StageResult("check-fairness", metrics={"accuracy": 0.91, "rows": 120, "name": "x",
                                               "flag": True, "nan": float("nan")})
    r.gates = [Threshold.parse("accuracy>=0.5").check(0.91),
               MaxDrop.parse("accuracy=0.01").check(0.91, 0.95),
               Threshold.parse("accuracy>=0.5").check(0.91)]
    r.fail_unless_gates_pass()
    suite = ET.fromstring(ci.junit(r))
    names = [c.get("name") for c in suite]
    assert names == ["accuracy >= 0.5", "accuracy max drop 0.01", "accuracy >= 0.5 #2"], names
    drop = suite[1]
    assert drop.find("failure") is not None
    assert "baseline 0.95, delta -0.04" in drop.find("system-out").text
    assert ci.metrics_report(r).splitlines() == [
        "check_fairness_accuracy 0.91", "check_fairness_rows 120", "check_fairness_passed 0"]


def test_secrets_never_reach_outputs(tmp_path):
    secrets.register("hunter2-token")
    r = StageResult("x", outputs={"url": "https://u:hunter2-token@host/p"})
    out = tmp_path / "out"
    ci.emit(r, tmp_path, env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)},
            echo=lambda s: None)
    assert "hunter2" not in out.read_text()


def test_summary_cap(tmp_path):
    summary = tmp_path / "s.md"
    summary.write_bytes(b"x" * (ci.SUMMARY_CAP - 10))
    ci.github_summary("y" * 100, str(summary))
    assert summary.stat().st_size < ci.SUMMARY_CAP + 200
    assert b"1 MiB cap" in summary.read_bytes()

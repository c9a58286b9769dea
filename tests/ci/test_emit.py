import xml.etree.ElementTree as ET

from mlcd_actions.ci import emit as ci
from mlcd_actions.core import secrets
from mlcd_actions.core.gates import Threshold
from mlcd_actions.core.results import Finding, StageResult


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
    assert failed[0].get("name") == "f1"


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

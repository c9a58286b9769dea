import json

from mlcd_actions.core import reporting as report
from mlcd_actions.core.gates import MaxDrop
from mlcd_actions.core.results import Finding, StageResult, Table


def test_roundtrip_and_markdown(tmp_path):
    r = StageResult("check-data", metrics={"rows": 10}, outputs={"valid": True})
    r.gates = [MaxDrop.parse("accuracy=0.01").check(0.8, 0.9)]
    r.fail_unless_gates_pass()
    r.findings = [Finding("j***@e***.com in column email", code="pii.email", column="email",
                          count=3)]
    r.tables = [Table("groups", ["group", "n"], [["a", 1], ["b|c", 2]])]
    j, m = report.write(r, tmp_path, duration_s=1.23456)
    data = json.loads(j.read_text())
    assert data["schema"] == "mlcd.report/v1"
    assert data["status"] == "failed" and data["exit_code"] == 1
    assert data["duration_s"] == 1.235
    back = report.load(j)
    assert back.gates[0].metric == "accuracy" and back.findings[0].count == 3
    assert back.tables[0].rows[1] == ["b|c", 2]
    md = m.read_text()
    assert "mlcd check-data: failed" in md
    assert "| accuracy | 0.8 | max drop 0.01 | 0.9 | -0.1 | higher | ❌ failed |" in md
    assert "b\\|c" in md


def test_report_name_for_groups(tmp_path):
    j, _ = report.write(StageResult("schema infer"), tmp_path)
    assert j.name == "schema-infer.json"

"""``mlcd check-data`` through the CLI: exit codes, verdicts, reports, and that no raw PII
value ever leaves the process (stdout, stderr, JSON/MD/JUnit reports, log, CI outputs)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA

SRC = DATA / "check_data"
RAW = ("john.doe", "jane.roe", "4111111111111111", "5500000000000004", "123-45-6789",
       "555-201-4567", "DE89 3704", "0532 0130", "bob@example.org")


@pytest.fixture
def files(isolated):
    for name in ("people.csv", "clean.csv", "policy.yaml", "badpolicy.yaml"):
        shutil.copy(SRC / name, name)
    return isolated


def _everything_written(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".csv")


def test_policy_violation_exits_1_and_masks_every_output(mlcd, files, tmp_path):
    out, summary = tmp_path / "gh_out", tmp_path / "gh_summary"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary)}
    r = mlcd("check-data", "people.csv", "--label", "approved", "--sensitive", "sex",
             "--pii-policy", "policy.yaml", "--rules", "gdpr", env=env)
    assert r.exit_code == 1, r
    assert r.verdict.startswith("mlcd check-data: failed — ")
    assert "violation" in r.verdict
    report = json.loads(Path(".mlcd/reports/check-data.json").read_text())
    assert report["status"] == "failed" and report["outputs"]["violations"] >= 2
    assert Path(".mlcd/logs/mlcd.log").is_file()
    written = (r.stdout + r.stderr + _everything_written(files)
               + out.read_text() + summary.read_text())
    assert "j***@e***.com" in written and "************1111" in written
    for raw in RAW:
        assert raw not in written, f"raw PII {raw!r} leaked"


def test_clean_data_with_gates_passes(mlcd, files):
    r = mlcd("check-data", "clean.csv", "--label", "label", "--sensitive", "group",
             "--threshold", "label_rate_gap<=0.5", "--min-group-size", "3", "--rules", "hipaa")
    assert r.exit_code == 0, r
    assert r.verdict == ("mlcd check-data: passed — 6 rows, 0 PII findings, 1 sensitive "
                         "feature; 9 gates passed")
    md = Path(".mlcd/reports/check-data.md").read_text()
    assert "| label_rate_gap |" in md and "groups of group" in md


def test_bias_threshold_missed_exits_1(mlcd, files):
    r = mlcd("check-data", "clean.csv", "--label", "label", "--sensitive", "group",
             "--threshold", "label_rate_gap<=0.1", "--no-pii")
    assert r.exit_code == 1, r
    assert "label_rate_gap = 0.3333 misses <= 0.1" in r.verdict


def test_pos_label_option_same_name_as_evaluate(mlcd, files):
    r = mlcd("check-data", "clean.csv", "--label", "label", "--sensitive", "group", "--no-pii",
             "--pos-label", "0", "--threshold", "label_rate_gap<=1")
    assert r.exit_code == 0, r
    assert "rate of label=0" in Path(".mlcd/reports/check-data.md").read_text()
    r = mlcd("check-data", "clean.csv", "--label", "label", "--sensitive", "group", "--no-pii",
             "--threshold", "label_rate_gap<=1", env={"MLCD_POS_LABEL": "maybe"})
    assert r.exit_code == 2, r
    assert "--pos-label 'maybe' is not a label value" in r.verdict
    r = mlcd("check-data", "clean.csv", "--label", "label", "--positive-label", "0")
    assert r.exit_code == 2, r


def test_no_gate_is_loud(mlcd, files):
    r = mlcd("check-data", "people.csv")
    assert r.exit_code == 0, r
    assert "no gate configured" in r.verdict
    for raw in RAW:
        assert raw not in r.stdout + r.stderr + _everything_written(files)


@pytest.mark.parametrize("args,message", [
    (["missing.csv"], "missing.csv: no such file"),
    (["people.csv", "--sensitive", "race"], "people.csv: sensitive feature 'race' not found"),
    (["people.csv", "--label", "outcome"], "people.csv: label column 'outcome' not found"),
    (["people.csv", "--pii-policy", "badpolicy.yaml"],
     "badpolicy.yaml:2: column 'notes': unknown action 'redact'"),
    (["people.csv", "--rules", "sox"], "--rules 'sox': unknown rule set"),
    (["people.csv", "--sensitive", "sex", "--threshold", "f1>=0.9"], "unknown metric 'f1'"),
    (["malformed.csv"], "malformed.csv: malformed CSV"),
    (["empty.csv"], "empty.csv: dataset is empty (0 rows)"),
])
def test_bad_input_exits_2_with_one_clear_line(mlcd, files, args, message):
    Path("malformed.csv").write_text('a,b\n1,"unterminated\n')
    Path("empty.csv").write_text("a,b\n")
    Path(".mlcd/reports").mkdir(parents=True)
    Path(".mlcd/reports/keep.txt").write_text("earlier output")
    r = mlcd("check-data", *args)
    assert r.exit_code == 2, r
    assert message in r.verdict, r
    assert len(r.verdict.splitlines()) == 1
    assert Path(".mlcd/reports/keep.txt").read_text() == "earlier output"


def test_options_from_mlcd_yaml_and_env(mlcd, files):
    Path("mlcd.yaml").write_text("label: approved\ncheck-data:\n  sensitive: [sex]\n"
                                 "  rules: [pci]\n  pii-policy: policy.yaml\n")
    r = mlcd("check-data", "people.csv", env={"MLCD_MIN_GROUP_SIZE": "100"})
    assert r.exit_code == 1, r
    report = json.loads(Path(".mlcd/reports/check-data.json").read_text())
    metrics = {g["metric"]: g for g in report["gates"]}
    assert metrics["min_group_size"]["verdict"] == "failed"
    assert metrics["pci:credit_card"]["verdict"] == "failed"


def test_help_imports_nothing_heavy():
    code = ("import sys\nfrom mlcd_actions.cli import main\n"
            "for c in ('check-data', 'prepare'):\n"
            "    try:\n        main([c, '--help'])\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in ('pandas', 'numpy', 'pyarrow', 'sklearn', 'fairlearn')"
            " if m in sys.modules]\nprint(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "--pii-policy" in out.stdout and "--split-by-id" in out.stdout


@pytest.mark.parametrize("value", ["label_rate_gap <= 0.5",
                                   "label_rate_gap <= 0.5\ngroup:label_rate_gap <= 0.6",
                                   "label_rate_gap <= 0.5, group:label_rate_gap <= 0.6"])
def test_threshold_env_with_spaces_newlines_and_commas(mlcd, files, value):
    r = mlcd("check-data", "clean.csv", "--label", "label", "--sensitive", "group", "--no-pii",
             env={"MLCD_THRESHOLD": value})
    assert r.exit_code == 0, r
    report = json.loads(Path(".mlcd/reports/check-data.json").read_text())
    thresholds = sorted(str(g["threshold"]) for g in report["gates"])
    assert len(thresholds) == value.count("<=")
    assert all("<=" in t for t in thresholds), thresholds

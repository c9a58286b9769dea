"""mlcd monitor through the CLI: exit codes, outputs, dispatch and issues against the fake
forge, dry run, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import DATA
from tests.fake_forge import TOKEN, TRIGGER_TOKEN, forge  # noqa: F401

D = DATA / "monitor"


def outputs(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def test_drift_exits_1_with_outputs(mlcd, tmp_path):
    gh_out = tmp_path / "out.txt"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(gh_out),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current",
             D / "current_shifted.csv", env=env)
    assert r.exit_code == 1, r
    assert r.verdict.startswith("mlcd monitor: failed — drift in 3/6 feature(s)")
    o = outputs(gh_out)
    assert o["drift"] == "true" and o["retrain"] == "true"
    assert sorted(o["drifted-features"].split(",")) == ["age", "city", "income"]
    report = json.loads(Path(".mlcd/reports/monitor.json").read_text())
    assert report["tables"][0]["title"] == "per-feature drift"
    assert Path(".mlcd/reports/monitor/age.png").exists()
    assert "```mermaid" in (tmp_path / "summary.md").read_text()


def test_no_drift_exits_0(mlcd):
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current", D / "current_same.csv",
             "--threshold", "psi<=0.2", "--threshold", "js<=0.1", "--max-plots", "0")
    assert r.exit_code == 0, r
    assert r.verdict == "mlcd monitor: passed — no drift in 6 feature(s)"


def test_accuracy_decay_gate_from_prediction_log(mlcd):
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current", D / "predictions.jsonl",
             "--labels", D / "labels.csv", "--baseline-metrics", D / "baseline.json",
             "--max-decay", "accuracy=0.05", "--max-plots", "0")
    assert r.exit_code == 1, r
    assert "accuracy dropped by" in r.verdict and "retraining requested" in r.verdict
    rep = json.loads(Path(".mlcd/reports/monitor.json").read_text())
    assert rep["outputs"]["accuracy-decay"] is True and rep["outputs"]["drift"] is False


def test_dispatch_github_workflow_and_issue(mlcd, forge):  # noqa: F811
    env = forge.github_env(GITHUB_REF_NAME="main")
    args = ["monitor", "--reference", D / "reference.csv", "--current",
            D / "current_shifted.csv", "--dispatch", "github", "--workflow", "retrain.yml",
            "--open-issue", "--max-plots", "0"]
    r = mlcd(*args, env=env)
    assert r.exit_code == 1, r
    r2 = mlcd(*args, env=env)
    assert r2.exit_code == 1, r2
    wd = [d for d in forge.state.dispatches if d["kind"] == "workflow_dispatch"]
    assert len(wd) == 2 and wd[0]["workflow"] == "retrain.yml" and wd[0]["ref"] == "main"
    assert len(forge.state.issues) == 1
    assert any(q.method == "PATCH" for q in forge.state.requests)
    assert TOKEN not in r.output


def test_gitlab_trigger(mlcd, forge):  # noqa: F811
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current",
             D / "current_shifted.csv", "--dispatch", "gitlab", "--open-issue", "--max-plots",
             "0", env=forge.gitlab_env(CI_DEFAULT_BRANCH="trunk"))
    assert r.exit_code == 1, r
    assert forge.state.pipelines[0]["ref"] == "trunk"
    assert "<!-- mlcd-monitor-incident -->" in forge.state.issues[1]["description"]


def test_dry_run_prints_masked_request(mlcd, forge):  # noqa: F811
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current",
             D / "current_shifted.csv", "--dispatch", "gitlab", "--dry-run", "--max-plots", "0",
             env=forge.gitlab_env())
    assert r.exit_code == 1, r
    assert "dry run — would send POST" in r.stdout and "/projects/42/trigger/pipeline" in r.stdout
    assert TRIGGER_TOKEN not in r.output and forge.state.requests == []


def test_service_500_exits_3(mlcd, forge):  # noqa: F811
    forge.state.fail_status = 500
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current",
             D / "current_shifted.csv", "--dispatch", "github", "--max-plots", "0",
             env=forge.github_env())
    assert r.exit_code == 3, r
    assert "GitHub API POST /repos/acme/credit/dispatches failed: HTTP 500" in r.verdict


def test_missing_file_exits_2(mlcd):
    r = mlcd("monitor", "--reference", "nope.csv", "--current", D / "current_same.csv")
    assert r.exit_code == 2, r
    assert r.verdict == "mlcd monitor: failed — nope.csv: no such file"


def test_bad_threshold_exits_2(mlcd):
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current", D / "current_same.csv",
             "--threshold", "psi<<0.2")
    assert r.exit_code == 2, r
    assert "--threshold 'psi<<0.2'" in r.verdict


def test_malformed_log_line_exits_2(mlcd, tmp_path):
    lines = (D / "predictions.jsonl").read_text().splitlines()[:3]
    (tmp_path / "log.jsonl").write_text("\n".join(lines + ['{"inputs": {"age": 1}', ""]))
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current", tmp_path / "log.jsonl")
    assert r.exit_code == 2, r
    assert "log.jsonl:4: not valid JSON" in r.verdict


def test_help_is_light():
    import subprocess
    import sys

    code = ("import sys; from mlcd_actions.cli import main; main(['monitor', '--help']) ; "
            "bad=[m for m in ('pandas','numpy','sklearn','mlflow','scipy','matplotlib') "
            "if m in sys.modules]; print('HEAVY', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_gate_env_vars_keep_spaces_and_split_on_newlines_and_commas(mlcd):
    for value, want in [("psi <= 0.3", {"<= 0.3"}), ("psi <= 0.3\njs <= 0.15", {"<= 0.3", "<= 0.15"}),
                        ("psi <= 0.3, js <= 0.15", {"<= 0.3", "<= 0.15"})]:
        r = mlcd("monitor", "--reference", D / "reference.csv", "--current",
                 D / "current_same.csv", "--max-plots", "0", env={"MLCD_THRESHOLD": value})
        assert r.exit_code == 0, r
        rep = json.loads(Path(".mlcd/reports/monitor.json").read_text())
        used = {g["threshold"] for g in rep["gates"] if not g["metric"].endswith("null_fraction_delta")}
        assert want <= used, used
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current", D / "predictions.jsonl",
             "--labels", D / "labels.csv", "--baseline-metrics", D / "baseline.json",
             "--max-plots", "0", env={"MLCD_MAX_DECAY": "accuracy = 0.05"})
    assert r.exit_code == 1, r
    assert "accuracy dropped by" in r.verdict


def _with_pii_categories(tmp_path):
    import pandas as pd

    cur = pd.read_csv(D / "current_shifted.csv")
    cur.loc[:40, "city"] = "grace.secret@example.com"
    cur.loc[41:80, "city"] = "+44 20 7946 0958"
    path = tmp_path / "cur.csv"
    cur.to_csv(path, index=False)
    return path


def test_new_category_pii_is_masked_in_output_report_and_issue(mlcd, forge, tmp_path):  # noqa: F811
    cur = _with_pii_categories(tmp_path)
    env = forge.github_env(GITHUB_REF_NAME="main")
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current", cur, "--open-issue",
             "--platform", "github", "--max-plots", "2", env=env)
    assert r.exit_code == 1, r
    report = json.loads(Path(".mlcd/reports/monitor.json").read_text())
    new_cat = next(f for f in report["findings"] if f["code"] == "drift.new-category")
    assert "g***@e***.com" in new_cat["message"]
    issue_bodies = json.dumps(list(forge.state.issues.values()))
    assert len(forge.state.issues) == 1
    written = (r.stdout + r.stderr + issue_bodies
               + "".join(p.read_text(errors="replace") for p in Path(".mlcd").rglob("*")
                         if p.is_file() and p.suffix in (".json", ".md", ".xml", ".log")))
    for raw in ("grace.secret@example.com", "7946 0958"):
        assert raw not in written, raw


def test_labels_without_prediction_column_exits_2(mlcd, tmp_path):
    import pandas as pd

    cur = pd.read_csv(D / "reference.csv").head(50)      # has the label `approved`, no predictions
    cur["id"] = range(len(cur))
    cur.to_csv(tmp_path / "cur.csv", index=False)
    cur[["id", "approved"]].to_csv(tmp_path / "labels.csv", index=False)
    for extra in (["--labels", "approved"],
                  ["--labels", tmp_path / "labels.csv", "--id-column", "id"]):
        r = mlcd("monitor", "--reference", D / "reference.csv", "--current", tmp_path / "cur.csv",
                 "--max-plots", "0", *extra)
        assert r.exit_code == 2, r
        assert "no prediction column 'prediction'" in r.verdict, r
        assert "--prediction-column" in r.verdict and "internal error" not in r.verdict


def test_feature_that_turns_all_null_is_flagged(mlcd, tmp_path):
    import pandas as pd

    cur = pd.read_csv(D / "current_same.csv")
    cur["income"] = float("nan")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    for extra in ([], ["--threshold", "psi<=0.25"]):   # the null gate stays with user gates
        r = mlcd("monitor", "--reference", D / "reference.csv", "--current", tmp_path / "cur.csv",
                 "--max-plots", "0", *extra)
        assert r.exit_code == 1, r
        assert "drift in 1/" in r.verdict and "income" in r.verdict
        rep = json.loads(Path(".mlcd/reports/monitor.json").read_text())
        gate = next(g for g in rep["gates"] if g["metric"] == "income.null_fraction_delta")
        assert gate["verdict"] == "failed" and gate["threshold"] == "<= 0.1"
        row = next(row for row in rep["tables"][0]["rows"] if row[0] == "income")
        assert row[-1] == "❌ drifted"
    r = mlcd("monitor", "--reference", D / "reference.csv", "--current", tmp_path / "cur.csv",
             "--max-plots", "0", "--threshold", "null_fraction_delta<=1")
    assert r.exit_code == 0, r

"""The reusable workflows and the starter workflows, run under act as a user's repository
runs them: through action-templates/local/act.py, the documented local runner (see
conftest.py). A passing pull request and the whole CD workflow are covered by
test_getting_started.py (docs/getting-started.md run as written, on a new repository);
here: a failing gate, the job graph, monitoring and the spelled-out starter."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.actions.conftest import ROOT, git_repo

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.timeout(1200)]
STARTERS = ROOT / "action-templates" / "workflows"
REQUIREMENTS = "requirements-ci.txt"  # the example's code check runs ruff


def caller(repo: Path, starter: str, **with_: object) -> str:
    """Install a starter workflow into the repository, with extra `with:` inputs."""
    data = yaml.safe_load((STARTERS / starter).read_text(encoding="utf-8"))
    data = {("on" if k is True else k): v for k, v in data.items()}  # YAML 1.1 reads on: as True
    for job in data["jobs"].values():
        if "uses" in job:
            job.setdefault("with", {}).update(with_)
    target = repo / ".github" / "workflows" / starter
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return starter


def test_pr_with_worse_model_fails_at_evaluate(act_env, project, mlflow_server):
    (project / "params.yaml").write_text("model: logistic_regression\nC: 0.00001\nseed: 0\n")
    (project / REQUIREMENTS).write_text("ruff\n")
    wf = caller(project, "mlcd-pr.yml", comment=False, requirements=REQUIREMENTS)
    git_repo(project)
    run = act_env.run(project, "pull_request", wf,
                      variables={"MLFLOW_TRACKING_URI": mlflow_server})
    assert run.code != 0, run
    results = run.job_results()
    model_job = next(j for j in results if "train and evaluate" in j)
    assert results[model_job] == "failed", results
    assert re.search(r"mlcd evaluate: failed", run.output), run
    assert re.search(r"mlcd train: passed", run.output), run
    # the data job passed; the report job still ran and wrote the summary
    assert [v for j, v in results.items() if "data checks" in j] == ["succeeded"], results
    assert any("report" in j for j in results), results


def _set_outputs(run, name: str) -> set[str]:
    return set(re.findall(rf"::set-output:: {re.escape(name)}=(\S*)", run.output))


def _first(run, pattern: str, job_part: str) -> int:
    for i, line in enumerate(run.output.splitlines()):
        if job_part in line.split("]")[0] and re.search(pattern, line):
            return i
    raise AssertionError(f"{pattern!r} not found in job {job_part!r}:\n{run!r}")


def test_cd_job_graph_gates_production():
    """The production job needs staging (whose last step is the smoke test), is bound to
    the protected environment, and rolls back when its own smoke test fails."""
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "cd.yml").read_text())
    jobs = data["jobs"]
    assert "staging" in jobs["production"]["needs"]
    assert jobs["production"]["environment"]["name"] == "${{ inputs.production-environment }}"
    assert data[True]["workflow_call"]["inputs"]["production-environment"]["default"] == \
        "production"
    steps = jobs["staging"]["steps"]
    assert [s.get("id") for s in steps].index("smoke-test") > \
        [s.get("id") for s in steps].index("deploy")
    prod = {s.get("id"): s for s in jobs["production"]["steps"]}
    assert "failure()" in prod["rollback"]["if"]
    assert prod["rollback"]["uses"].endswith("/action-templates/rollback@v1")
    # the same image digest / registered version in both environments
    assert prod["deploy"]["with"]["image"] == \
        {s.get("id"): s for s in steps}["deploy"]["with"]["image"]
    for job in ("model",):
        assert "train-runs-on" in jobs[job]["runs-on"]


def test_monitor_workflow_dispatches_retraining_on_drift(act_env, project):
    # production data that drifted: incomes and amounts tripled
    import pandas as pd

    current = pd.read_csv(project / "data" / "new_applications.csv")
    for col in current.select_dtypes("number").columns:
        if col not in ("applicant_id",):
            current[col] = current[col] * 3
    current.to_csv(project / "data" / "new_applications.csv", index=False)
    wf = caller(project, "mlcd-monitor.yml")
    git_repo(project)
    run = act_env.run(project, "workflow_dispatch", wf)
    writes = [(r["method"], r["path"], r["body"]) for r in act_env.requests(project)
              if r["method"] in ("POST", "PATCH")]
    assert re.search(r"mlcd monitor: failed — .*drift", run.output), run
    assert any(p.endswith("/dispatches") and "mlcd-retrain" in json.dumps(b)
               for _m, p, b in writes), writes
    assert any(p.endswith("/issues") for _m, p, _b in writes), writes
    assert re.search(r"::set-output:: retrain=true", run.output), run


def test_full_starter_runs_the_pull_request_pipeline(act_env, project, mlflow_server):
    """mlcd-full.yml, copied as is: on a pull request the data, model and report jobs run
    and pass; the delivery and monitoring jobs are skipped by their conditions."""
    shutil.copy2(STARTERS / "mlcd-full.yml", project / ".github" / "workflows" / "mlcd.yml")
    git_repo(project)
    run = act_env.run(project, "pull_request", "mlcd.yml",
                      variables={"MLFLOW_TRACKING_URI": mlflow_server})
    comments = [r for r in act_env.requests(project) if r["method"] in ("POST", "PATCH")]
    assert run.code == 0, run
    results = run.job_results()
    assert {j.strip() for j in results} == {"mlcd/data", "mlcd/model", "mlcd/report"}, results
    assert set(results.values()) == {"succeeded"}, results
    assert not any(k in " ".join(results) for k in ("staging", "production", "monitor"))
    for stage in ("ingest", "validate", "prepare", "check-data", "train", "evaluate",
                  "check-fairness", "report"):
        assert re.search(rf"mlcd {stage}: passed", run.output), (stage, run)
    assert any("/issues/7/comments" in r["path"] for r in comments), comments


def test_cd_strategy_promote_and_the_protected_override_job():
    """Production: deploy with the strategy input -> smoke-test -> promote (shadow/canary);
    rollback not after a failed promote (it aborted already). The override job runs only
    after a failed gate, when asked, bound to its protected environment."""
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "cd.yml").read_text())
    jobs = data["jobs"]
    inputs = data[True]["workflow_call"]["inputs"]
    assert inputs["strategy"]["default"] == "direct"
    prod = [s.get("id") for s in jobs["production"]["steps"]]
    assert prod.index("deploy") < prod.index("smoke-test") < prod.index("promote") \
        < prod.index("rollback")
    steps = {s.get("id"): s for s in jobs["production"]["steps"]}
    assert steps["deploy"]["with"]["strategy"] == "${{ inputs.strategy }}"
    assert steps["promote"]["if"] == "${{ inputs.strategy != 'direct' }}"
    assert "steps.promote.outcome != 'failure'" in steps["rollback"]["if"]
    override = jobs["override"]
    assert override["environment"]["name"] == "${{ inputs.override-environment }}"
    assert "failure()" in override["if"] and "inputs.override-stage != ''" in override["if"]
    ids = [s.get("id") for s in override["steps"]]
    assert ids.index("override") < ids.index("evaluate") < ids.index("register")
    assert "override" in jobs["production"]["needs"]
